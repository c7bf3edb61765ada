/* The spool's record encoder (gateway.northbound.segment_log.encode) in C.
 *
 * Why C: at QoS 0 the spool's cost is writing the values that wait longer than one flush, and the
 * record's Python encoding was the largest part of it (0.75-1.2 us a 330-byte record under load, half of
 * what the spool added per value in the live bench); this loop does the same in 0.2-0.3 us
 * (docs/performance.md, "Stop 25"). The output is byte for byte that of the Python loop in
 * segment_log.py (tests/northbound/test_spool.py compares them), which stays as the fallback.
 *
 * Record: crc32(body) u32, len(body) u32, then the body: seq i64, spooled-at f64, expiry i32 (-1 none),
 * kind u8, qos u8, retain u8, topic length u16, topic, payload (little-endian).
 * The CRC is zlib's (the same checksums as zlib.crc32): zlib-ng's zng_crc32 when the zlib_ng module
 * (a dependency) is loaded and exports it, else the system zlib's crc32.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

#define HEAD 8
#define FIXED 25 /* 8 + 8 + 4 + 1 + 1 + 1 + 2 */

typedef uint32_t (*crc_fn)(uint32_t, const unsigned char *, uint32_t); /* zlib-ng's zng_crc32 */

static uint32_t zlib_crc(uint32_t crc, const unsigned char *buf, uint32_t len) {
    return (uint32_t)crc32((uLong)crc, buf, (uInt)len);
}

static crc_fn crc = zlib_crc;
static PyObject *s_seq, *s_born, *s_expiry, *s_kind, *s_qos, *s_retain, *s_topic, *s_payload;

typedef struct {
    const char *topic, *payload;
    Py_ssize_t tl, pl;
    long long seq, expiry;
    double born;
    int kind, qos, retain;
} rec;

static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}

static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* One integer field; -1 with an exception set on error. */
static int get_ll(PyObject *m, PyObject *name, long long *out) {
    PyObject *v = PyObject_GetAttr(m, name);
    if (v == NULL) return -1;
    *out = PyLong_AsLongLong(v);
    Py_DECREF(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int out_of_range(const char *what) {
    PyErr_Format(PyExc_OverflowError, "spool record: %s out of range", what);
    return -1;
}

/* Fields of one message; topic and payload point into objects the message keeps alive.
 * -1 with TypeError when a field is not of the usual type (the caller then uses the Python loop). */
static int read_row(PyObject *m, PyObject *codes, rec *r) {
    long long qos, retain;
    if (get_ll(m, s_seq, &r->seq) < 0 || get_ll(m, s_qos, &qos) < 0 || get_ll(m, s_retain, &retain) < 0) return -1;
    if (qos < 0 || qos > 255) return out_of_range("qos");
    if (retain < 0 || retain > 255) return out_of_range("retain");
    r->qos = (int)qos;
    r->retain = (int)retain;
    PyObject *v = PyObject_GetAttr(m, s_born);
    if (v == NULL) return -1;
    r->born = PyFloat_AsDouble(v);
    Py_DECREF(v);
    if (r->born == -1.0 && PyErr_Occurred()) return -1;
    v = PyObject_GetAttr(m, s_expiry);
    if (v == NULL) return -1;
    if (v == Py_None) {
        r->expiry = -1;
    } else {
        r->expiry = PyLong_AsLongLong(v);
        if (r->expiry == -1 && PyErr_Occurred()) { Py_DECREF(v); return -1; }
        if (r->expiry < INT32_MIN || r->expiry > INT32_MAX) { Py_DECREF(v); return out_of_range("expiry"); }
    }
    Py_DECREF(v);
    v = PyObject_GetAttr(m, s_kind);
    if (v == NULL) return -1;
    PyObject *code = PyDict_GetItemWithError(codes, v); /* borrowed */
    if (code == NULL) {
        if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, v);
        Py_DECREF(v);
        return -1;
    }
    Py_DECREF(v);
    r->kind = (int)PyLong_AsLong(code);
    if (r->kind == -1 && PyErr_Occurred()) return -1;
    v = PyObject_GetAttr(m, s_topic);
    if (v == NULL) return -1;
    r->topic = PyUnicode_Check(v) ? PyUnicode_AsUTF8AndSize(v, &r->tl) : NULL; /* cached in the str */
    Py_DECREF(v);
    if (r->topic == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "spool record: topic is not a str");
        return -1;
    }
    if (r->tl > 0xFFFF) return out_of_range("topic length");
    v = PyObject_GetAttr(m, s_payload);
    if (v == NULL) return -1;
    if (!PyBytes_Check(v)) {
        Py_DECREF(v);
        PyErr_SetString(PyExc_TypeError, "spool record: payload is not bytes");
        return -1;
    }
    char *pp;
    if (PyBytes_AsStringAndSize(v, &pp, &r->pl) < 0) { Py_DECREF(v); return -1; }
    r->payload = pp;
    Py_DECREF(v);
    return 0;
}

static PyObject *encode(PyObject *self, PyObject *args) {
    PyObject *rows, *codes;
    if (!PyArg_ParseTuple(args, "OO", &rows, &codes)) return NULL;
    if (!PyList_Check(rows) || !PyDict_Check(codes)) {
        PyErr_SetString(PyExc_TypeError, "encode(rows, codes): a list of ValueMessage and the kind codes (a dict)");
        return NULL;
    }
    Py_INCREF(rows);
    Py_ssize_t n = PyList_Size(rows);
    rec *rs = PyMem_Malloc(sizeof(rec) * (size_t)(n ? n : 1));
    PyObject *lens = NULL, *kinds = NULL, *data = NULL, *seqs = NULL, *ts = NULL, *out = NULL;
    if (rs == NULL) { PyErr_NoMemory(); goto done; }
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = PyList_GetItem(rows, i); /* borrowed: the list keeps the message alive */
        if (m == NULL) goto done;
        if (read_row(m, codes, &rs[i]) < 0) goto done;
        total += HEAD + FIXED + rs[i].tl + rs[i].pl;
    }
    data = PyBytes_FromStringAndSize(NULL, total);
    lens = PyList_New(n);
    kinds = PyByteArray_FromStringAndSize(NULL, n);
    seqs = PyBytes_FromStringAndSize(NULL, n * 8);
    ts = PyBytes_FromStringAndSize(NULL, n * 8);
    if (data == NULL || lens == NULL || kinds == NULL || seqs == NULL || ts == NULL) goto done;
    unsigned char *p = (unsigned char *)PyBytes_AsString(data);
    char *k = PyByteArray_AsString(kinds);
    char *sq = PyBytes_AsString(seqs), *tm = PyBytes_AsString(ts);
    for (Py_ssize_t i = 0; i < n; i++) {
        rec *r = &rs[i];
        unsigned char *b = p + HEAD;
        uint64_t bits;
        memcpy(&bits, &r->born, 8);
        put_u64(b, (uint64_t)r->seq);
        put_u64(b + 8, bits);
        put_u32(b + 16, (uint32_t)(int32_t)r->expiry);
        b[20] = (unsigned char)r->kind;
        b[21] = (unsigned char)r->qos;
        b[22] = (unsigned char)r->retain;
        b[23] = (unsigned char)r->tl;
        b[24] = (unsigned char)(r->tl >> 8);
        memcpy(b + FIXED, r->topic, (size_t)r->tl);
        memcpy(b + FIXED + r->tl, r->payload, (size_t)r->pl);
        size_t blen = (size_t)(FIXED + r->tl + r->pl);
        put_u32(p, crc(0, b, (uint32_t)blen)); /* blen < 4 GiB: an MQTT payload is at most 256 MiB */
        put_u32(p + 4, (uint32_t)blen);
        PyObject *ln = PyLong_FromSsize_t((Py_ssize_t)blen + HEAD);
        if (ln == NULL) goto done;
        PyList_SetItem(lens, i, ln);
        k[i] = (char)r->kind;
        int64_t seq64 = (int64_t)r->seq;
        memcpy(sq + 8 * i, &seq64, 8); /* native order: what array('q') and array('d') hold */
        memcpy(tm + 8 * i, &r->born, 8);
        p += HEAD + blen;
    }
    out = PyTuple_Pack(5, data, lens, kinds, seqs, ts);
done:
    PyMem_Free(rs);
    Py_XDECREF(data);
    Py_XDECREF(lens);
    Py_XDECREF(kinds);
    Py_XDECREF(seqs);
    Py_XDECREF(ts);
    Py_DECREF(rows);
    return out;
}

static PyObject *crc_impl(PyObject *self, PyObject *unused) {
    return PyUnicode_FromString(crc == zlib_crc ? "zlib" : "zlib-ng");
}

static PyMethodDef methods[] = {
    {"encode", encode, METH_VARARGS,
     "encode(rows, codes) -> (bytes, lens, kinds, seqs, times): the records of ``rows`` (segment_log.encode)."},
    {"crc_impl", crc_impl, METH_NOARGS, "Which CRC-32 the records are checked with: 'zlib-ng' or 'zlib'."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_records", NULL, -1, methods, NULL, NULL, NULL, NULL};

/* zlib-ng's zng_crc32 from the zlib_ng extension already loaded (~4x zlib's speed on a 330-byte record). */
static void find_zlib_ng(void) {
    PyObject *mod = PyImport_ImportModule("zlib_ng.zlib_ng");
    if (mod == NULL) { PyErr_Clear(); return; }
    PyObject *file = PyObject_GetAttrString(mod, "__file__");
    Py_DECREF(mod);
    if (file == NULL) { PyErr_Clear(); return; }
    const char *path = PyUnicode_Check(file) ? PyUnicode_AsUTF8AndSize(file, NULL) : NULL;
    if (path != NULL) {
        void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
        if (h != NULL) {
            void *f = dlsym(h, "zng_crc32");
            if (f != NULL) crc = (crc_fn)f;
            dlclose(h); /* the module stays loaded: Python holds it */
        }
    }
    PyErr_Clear();
    Py_DECREF(file);
}

PyMODINIT_FUNC PyInit__records(void) {
    s_seq = PyUnicode_InternFromString("seq");
    s_born = PyUnicode_InternFromString("born");
    s_expiry = PyUnicode_InternFromString("expiry");
    s_kind = PyUnicode_InternFromString("kind");
    s_qos = PyUnicode_InternFromString("qos");
    s_retain = PyUnicode_InternFromString("retain");
    s_topic = PyUnicode_InternFromString("topic");
    s_payload = PyUnicode_InternFromString("payload");
    if (!s_seq || !s_born || !s_expiry || !s_kind || !s_qos || !s_retain || !s_topic || !s_payload) return NULL;
    find_zlib_ng();
    return PyModule_Create(&module);
}
