/* gateway.site._yamlfast: a site file's YAML text -> Python data, straight from libyaml's event parser.
 *
 * Why C: at 10,000 points (2.9 MB) yaml.load(CSafeLoader) takes 1.10 CPU-s and composing PyYAML's node
 * tree alone 0.54 (one Python Event and one Node object per scalar, a resolver call per scalar); json.loads
 * of the same data takes 0.026. This builds dicts, lists and scalars directly from libyaml's events,
 * with no Python object in between: 0.85 -> 0.08 CPU-s in load_yaml at 10,000 points, 17 -> 1.7 at the
 * emulator bench's 9,500-device site (docs/performance.md, Stop 25).
 *
 * It handles exactly what gateway/site/load.py's _construct_tree builds itself, with the same values and
 * types (PyYAML SafeLoader's YAML 1.1 implicit resolution): block and flow maps and lists, plain strings,
 * quoted/literal/folded strings, nulls, bools, decimal ints of at most 18 digits, and the floats that
 * PyYAML's float regex matches and Python's float() accepts. For anything else -- a tag, an anchor or
 * alias, a merge key, a non-scalar or duplicate key, a timestamp, an octal/hex/binary/sexagesimal int,
 * .inf/.nan, a %directive, a second document, a parse error, nesting deeper than MAX_DEPTH -- load()
 * returns NotImplemented and the caller runs PyYAML, which gives the value or the error with its marks.
 * tests/core/test_yaml_fast_construct.py compares both on every shipped file and on a table of edge cases.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 200 /* deeper: PyYAML's path (a site file is ~6 levels deep) */

typedef enum { R_STR, R_NULL, R_TRUE, R_FALSE, R_INT, R_FLOAT, R_FALLBACK } kind_t;

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int eq(const char *s, size_t n, const char *lit) { return strlen(lit) == n && memcmp(s, lit, n) == 0; }

/* PyYAML's float alternatives 1 and 2: [-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?  |  \.[0-9][0-9_]*(...)? */
static int float_ab(const char *s, size_t n) {
    size_t i = 0;
    if (i < n && s[i] == '.') { /* alternative 2: no sign */
        i++;
        if (i >= n || !is_digit(s[i])) return 0;
        i++;
        while (i < n && (is_digit(s[i]) || s[i] == '_')) i++;
    } else {
        if (i < n && (s[i] == '-' || s[i] == '+')) i++;
        if (i >= n || !is_digit(s[i])) return 0;
        i++;
        while (i < n && (is_digit(s[i]) || s[i] == '_')) i++;
        if (i >= n || s[i] != '.') return 0;
        i++;
        while (i < n && (is_digit(s[i]) || s[i] == '_')) i++;
    }
    if (i == n) return 1;
    if (s[i] != 'e' && s[i] != 'E') return 0;
    i++;
    if (i >= n || (s[i] != '-' && s[i] != '+')) return 0;
    i++;
    if (i >= n || !is_digit(s[i])) return 0;
    while (i < n && is_digit(s[i])) i++;
    return i == n;
}

/* PyYAML's sexagesimal int [-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+ or float [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]* */
static int sexagesimal(const char *s, size_t n) {
    size_t i = 0, groups = 0;
    char lead;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    if (i >= n || !is_digit(s[i])) return 0;
    lead = s[i++];
    while (i < n && (is_digit(s[i]) || s[i] == '_')) i++;
    while (i < n && s[i] == ':') {
        i++;
        if (i + 1 < n && s[i] >= '0' && s[i] <= '5' && is_digit(s[i + 1])) i += 2; /* greedy is exact here */
        else if (i < n && is_digit(s[i])) i += 1;
        else return 0;
        groups++;
    }
    if (!groups) return 0;
    if (i == n) return lead != '0';
    if (s[i] != '.') return 0;
    i++;
    while (i < n && (is_digit(s[i]) || s[i] == '_')) i++;
    return i == n;
}

/* After a leading 0: PyYAML's 0b[0-1_]+, 0x[0-9a-fA-F_]+ or 0[0-7_]* (which also makes 0_ and 00 octal ints) */
static int int_base(const char *s, size_t n) {
    size_t i = 0;
    if (n >= 2 && (s[0] == 'b' || s[0] == 'x')) {
        for (i = 1; i < n; i++) {
            char c = s[i];
            if (c == '_' || c == '0' || c == '1') continue;
            if (s[0] == 'x' && (is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) continue;
            return 0;
        }
        return 1;
    }
    for (i = 0; i < n; i++)
        if (!(s[i] == '_' || (s[i] >= '0' && s[i] <= '7'))) return 0;
    return 1;
}

/* The tag PyYAML's Resolver gives a plain (implicit) scalar, as far as this module builds it itself. */
static kind_t resolve_plain(const char *s, size_t n) {
    if (n == 0) return R_NULL;
    if (s[n - 1] == '\n') return R_FALLBACK; /* the regexes' '$' also matches before a final newline */
    switch (s[0]) {
    case 'y': case 'Y': case 'n': case 'N': case 't': case 'T': case 'f': case 'F': case 'o': case 'O':
        if (eq(s, n, "yes") || eq(s, n, "Yes") || eq(s, n, "YES") || eq(s, n, "true") || eq(s, n, "True") ||
            eq(s, n, "TRUE") || eq(s, n, "on") || eq(s, n, "On") || eq(s, n, "ON"))
            return R_TRUE;
        if (eq(s, n, "no") || eq(s, n, "No") || eq(s, n, "NO") || eq(s, n, "false") || eq(s, n, "False") ||
            eq(s, n, "FALSE") || eq(s, n, "off") || eq(s, n, "Off") || eq(s, n, "OFF"))
            return R_FALSE;
        if (eq(s, n, "null") || eq(s, n, "Null") || eq(s, n, "NULL")) return R_NULL;
        return R_STR;
    case '~':
        return n == 1 ? R_NULL : R_STR;
    case '<': /* merge key */
        return eq(s, n, "<<") ? R_FALLBACK : R_STR;
    case '=': /* tag:yaml.org,2002:value, which SafeLoader refuses */
        return n == 1 ? R_FALLBACK : R_STR;
    case '-': case '+': case '.': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9': {
        size_t i = 0, j;
        if (float_ab(s, n)) return R_FLOAT;
        if (eq(s, n, ".nan") || eq(s, n, ".NaN") || eq(s, n, ".NAN")) return R_FALLBACK; /* PyYAML's constructor */
        if (s[0] == '-' || s[0] == '+') i++;
        if (eq(s + i, n - i, ".inf") || eq(s + i, n - i, ".Inf") || eq(s + i, n - i, ".INF")) return R_FALLBACK;
        if (memchr(s, ':', n) && sexagesimal(s, n)) return R_FALLBACK;
        if (i < n && s[i] == '0') {
            if (i + 1 == n) return R_INT;
            if (int_base(s + i + 1, n - i - 1)) return R_FALLBACK; /* octal, hex, binary: PyYAML's constructor */
        } else if (i < n && is_digit(s[i])) { /* [-+]?[1-9][0-9_]* */
            for (j = i; j < n && (is_digit(s[j]) || s[j] == '_'); j++) {}
            if (j == n) return (memchr(s, '_', n) || n - i > 18) ? R_FALLBACK : R_INT; /* 18 digits: well in 64 bits */
        }
        if (n >= 5 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) && s[4] == '-')
            return R_FALLBACK; /* every timestamp starts YYYY- : PyYAML decides */
        return R_STR;
    }
    default:
        return R_STR;
    }
}

/* NotImplemented (new reference) for "not handled", NULL with an exception for a Python error */
static PyObject *fallback(void) {
    Py_INCREF(Py_NotImplemented);
    return Py_NotImplemented;
}

#define FALLBACK ((PyObject *)1) /* scalar(): not handled */

static PyObject *scalar(const yaml_event_t *ev) {
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    PyObject *text, *out;
    kind_t k;
    if (ev->data.scalar.tag || ev->data.scalar.anchor) return FALLBACK;
    k = ev->data.scalar.plain_implicit ? resolve_plain(s, n) : R_STR; /* quoted, literal, folded: strings */
    switch (k) {
    case R_STR: return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "strict");
    case R_NULL: Py_INCREF(Py_None); return Py_None;
    case R_TRUE: Py_INCREF(Py_True); return Py_True;
    case R_FALSE: Py_INCREF(Py_False); return Py_False;
    case R_INT: {
        char buf[24];
        memcpy(buf, s, n);
        buf[n] = '\0';
        return PyLong_FromString(buf, NULL, 10);
    }
    case R_FLOAT: /* what float() accepts, as _construct_tree; what it refuses (1_.5): PyYAML's rules */
        text = PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "strict");
        if (!text) return NULL;
        out = PyFloat_FromString(text);
        Py_DECREF(text);
        if (!out && PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            return FALLBACK;
        }
        return out;
    default:
        return FALLBACK;
    }
}

typedef struct {
    PyObject *obj; /* list or dict (strong reference) */
    PyObject *key; /* a dict's key waiting for its value, or NULL */
} frame_t;

/* Add ``v`` (stolen) to the open collection; 0 ok, -1 Python error, 1 not handled (duplicate key). */
static int attach(frame_t *top, PyObject *v, int v_is_scalar) {
    int r;
    if (PyList_Check(top->obj)) {
        r = PyList_Append(top->obj, v);
        Py_DECREF(v);
        return r;
    }
    if (!top->key) {
        if (!v_is_scalar) { /* a map or list as a key */
            Py_DECREF(v);
            return 1;
        }
        r = PyDict_Contains(top->obj, v); /* also 1 vs True vs 1.0: PyYAML's duplicate-key error */
        if (r != 0) {
            Py_DECREF(v);
            return r < 0 ? -1 : 1;
        }
        top->key = v;
        return 0;
    }
    r = PyDict_SetItem(top->obj, top->key, v);
    Py_DECREF(v);
    Py_CLEAR(top->key);
    return r;
}

static PyObject *build(yaml_parser_t *parser) {
    frame_t stack[MAX_DEPTH];
    int depth = 0, docs = 0, r = 0;
    PyObject *root = NULL, *v, *result = NULL;
    yaml_event_t ev;

    for (;;) {
        if (!yaml_parser_parse(parser, &ev)) {
            result = fallback(); /* PyYAML gives the error with its marks */
            goto done;
        }
        v = NULL;
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1 || ev.data.document_start.version_directive ||
                ev.data.document_start.tag_directives.start != ev.data.document_start.tag_directives.end)
                r = 1;
            break;
        case YAML_STREAM_END_EVENT:
            yaml_event_delete(&ev);
            if (root) {
                result = root;
                root = NULL;
            } else {
                Py_INCREF(Py_None); /* an empty stream */
                result = Py_None;
            }
            goto done;
        case YAML_ALIAS_EVENT:
            r = 1;
            break;
        case YAML_SCALAR_EVENT:
            v = scalar(&ev);
            if (v == FALLBACK) r = 1;
            else if (!v) r = -1;
            else if (depth) r = attach(&stack[depth - 1], v, 1);
            else root = v;
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            yaml_char_t *tag = ev.type == YAML_SEQUENCE_START_EVENT ? ev.data.sequence_start.tag : ev.data.mapping_start.tag;
            yaml_char_t *anchor = ev.type == YAML_SEQUENCE_START_EVENT ? ev.data.sequence_start.anchor : ev.data.mapping_start.anchor;
            if (tag || anchor || depth >= MAX_DEPTH || (depth && PyDict_Check(stack[depth - 1].obj) && !stack[depth - 1].key)) {
                r = 1; /* tagged, anchored, too deep, or a complex key */
                break;
            }
            v = ev.type == YAML_SEQUENCE_START_EVENT ? PyList_New(0) : PyDict_New();
            if (!v) {
                r = -1;
                break;
            }
            stack[depth].obj = v;
            stack[depth].key = NULL;
            depth++;
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            v = stack[depth].obj;
            Py_XDECREF(stack[depth].key); /* none after a complete map */
            if (depth) r = attach(&stack[depth - 1], v, 0);
            else root = v;
            break;
        default:
            r = 1;
        }
        yaml_event_delete(&ev);
        if (r) {
            result = r < 0 ? NULL : fallback();
            goto done;
        }
    }
done:
    while (depth > 0) {
        depth--;
        Py_XDECREF(stack[depth].key);
        Py_DECREF(stack[depth].obj);
    }
    Py_XDECREF(root);
    return result;
}

static PyObject *load(PyObject *self, PyObject *arg) {
    yaml_parser_t parser;
    const char *buf;
    Py_ssize_t len;
    PyObject *out;
    (void)self;
    if (PyUnicode_Check(arg)) {
        buf = PyUnicode_AsUTF8AndSize(arg, &len);
        if (!buf) { /* lone surrogates: PyYAML's error */
            PyErr_Clear();
            return fallback();
        }
    } else if (PyBytes_Check(arg)) {
        buf = PyBytes_AsString(arg);
        len = PyBytes_Size(arg);
    } else {
        PyErr_SetString(PyExc_TypeError, "load() takes str or bytes");
        return NULL;
    }
    if (!yaml_parser_initialize(&parser)) return PyErr_NoMemory();
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, (size_t)len);
    if (PyUnicode_Check(arg)) yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING); /* as PyYAML's CParser */
    out = build(&parser);
    yaml_parser_delete(&parser);
    return out;
}

static PyMethodDef methods[] = {
    {"load", load, METH_O,
     "load(text) -> data, or NotImplemented where PyYAML must decide (see the module's source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_yamlfast", "A site file's YAML -> Python data from libyaml's events.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__yamlfast(void) { return PyModule_Create(&module); }
