/* firmware_sim._native: a thin CPython wrapper around the C sampling core (ggfw.c).
 *
 * Limited API (abi3, 3.11+). The Sampler takes the output buffers once and keeps their
 * exports alive (so the arrays cannot be resized under the C thread). The core never
 * touches Python; the GIL is released around large ticks, stop() and snapshot copies.
 */
/* Py_LIMITED_API is set by setup.py (not for free-threaded interpreters) */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdio.h>
#include <string.h>
#include "ggfw.h"

#define GIL_FREE_POINTS 4096u

typedef struct {
    PyObject_HEAD
    gg_core *core;
    Py_buffer out[5]; /* values, quality, regs, bits, changed */
    int n_out;
    uint32_t n, n_regs, n_bits;
} Sampler;

/* Get a C-contiguous buffer of `count` items with the given item size and format family. */
static int get_buf(PyObject *obj, const char *name, const char *formats, Py_ssize_t itemsize, Py_ssize_t count,
                   int writable, Py_buffer *view) {
    if (PyObject_GetBuffer(obj, view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0) {
        PyErr_Clear();
        PyObject *tn = PyType_GetName(Py_TYPE(obj));
        PyErr_Format(PyExc_TypeError, "%s: expected a %scontiguous buffer (array.array('%c')), got %S", name,
                     writable ? "writable " : "", formats[0], tn ? tn : Py_None);
        Py_XDECREF(tn);
        return -1;
    }
    const char *f = view->format ? view->format : "B";
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') f++;
    if (view->itemsize != itemsize || strlen(f) != 1 || !strchr(formats, f[0])) {
        PyErr_Format(PyExc_TypeError, "%s: expected items of type '%c' (%zd bytes), got '%s' (%zd bytes)", name,
                     formats[0], itemsize, view->format ? view->format : "B", view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    if (count >= 0 && view->len / itemsize != count) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd items, got %zd", name, count, view->len / itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static long get_count(PyObject *params, const char *key) {
    PyObject *v = PyDict_GetItemString(params, key);
    if (!v) {
        PyErr_Format(PyExc_KeyError, "params: missing %s", key);
        return -1;
    }
    long r = PyLong_AsLong(v);
    if (r < 0 && !PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "params.%s must be >= 0", key);
    return r;
}

typedef struct {
    const char *key, *formats;
    Py_ssize_t itemsize;
    int count; /* 0: n points, 1: n_harm, 2: n_pool */
    size_t offset;
} field_desc;

#define F(key, fmt, sz, cnt) {#key, fmt, sz, cnt, offsetof(gg_params, key)}
static const field_desc FIELDS[] = {
    F(kind, "B", 1, 0), F(noise, "f", 4, 0), F(deadband, "f", 4, 0), F(report, "B", 1, 0), F(ref, "il", 4, 0),
    F(reg_off, "il", 4, 0), F(reg_type, "B", 1, 0), F(reg_order, "B", 1, 0), F(reg_scale, "d", 8, 0),
    F(reg_offset, "d", 8, 0), F(harm_pt, "il", 4, 1), F(harm_freq, "d", 8, 1), F(harm_phase, "d", 8, 1),
    F(harm_amp, "d", 8, 1), F(pool, "d", 8, 2),
};
#define N_FIELDS (sizeof FIELDS / sizeof FIELDS[0])

static int Sampler_init(Sampler *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"params", "values", "quality", "regs", "bits", "changed", NULL};
    PyObject *params, *bufs[5];
    if (self->core) {
        PyErr_SetString(PyExc_RuntimeError, "Sampler is already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!OOOOO", kwlist, &PyDict_Type, &params, &bufs[0], &bufs[1], &bufs[2],
                                     &bufs[3], &bufs[4]))
        return -1;
    gg_params p;
    memset(&p, 0, sizeof p);
    long v;
    if ((v = get_count(params, "n")) < 0) return -1;
    p.n = (uint32_t)v;
    if ((v = get_count(params, "n_wave")) < 0) return -1;
    p.n_wave = (uint32_t)v;
    if ((v = get_count(params, "n_scalar_end")) < 0) return -1;
    p.n_scalar_end = (uint32_t)v;
    if ((v = get_count(params, "n_derived_end")) < 0) return -1;
    p.n_derived_end = (uint32_t)v;
    if ((v = get_count(params, "n_harm")) < 0) return -1;
    p.n_harm = (uint32_t)v;
    if ((v = get_count(params, "n_pool")) < 0) return -1;
    p.n_pool = (uint32_t)v;
    if ((v = get_count(params, "n_regs")) < 0) return -1;
    p.n_regs = (uint32_t)v;
    if ((v = get_count(params, "n_bits")) < 0) return -1;
    p.n_bits = (uint32_t)v;
    PyObject *seed = PyDict_GetItemString(params, "seed");
    p.seed = seed ? (uint64_t)PyLong_AsUnsignedLongLongMask(seed) : 0;
    if (PyErr_Occurred()) return -1;

    Py_buffer views[N_FIELDS + GG_NPARAM + 2];
    int nv = 0, rc = -1;
    Py_ssize_t counts[3] = {p.n, p.n_harm, p.n_pool};
    for (size_t k = 0; k < N_FIELDS; k++) {
        PyObject *o = PyDict_GetItemString(params, FIELDS[k].key);
        if (!o) {
            PyErr_Format(PyExc_KeyError, "params: missing %s", FIELDS[k].key);
            goto done;
        }
        char name[64];
        snprintf(name, sizeof name, "params.%s", FIELDS[k].key);
        if (get_buf(o, name, FIELDS[k].formats, FIELDS[k].itemsize, counts[FIELDS[k].count], 0, &views[nv]) < 0) goto done;
        *(const void **)((char *)&p + FIELDS[k].offset) = views[nv].buf;
        nv++;
    }
    PyObject *plist = PyDict_GetItemString(params, "p");
    if (!plist || !PyList_Check(plist) || PyList_Size(plist) != GG_NPARAM) {
        PyErr_Format(PyExc_ValueError, "params.p: expected a list of %d double arrays", GG_NPARAM);
        goto done;
    }
    for (int k = 0; k < GG_NPARAM; k++) {
        if (get_buf(PyList_GetItem(plist, k), "params.p[k]", "d", 8, p.n, 0, &views[nv]) < 0) goto done;
        p.p[k] = views[nv].buf;
        nv++;
    }
    PyObject *plant = PyDict_GetItemString(params, "plant");
    if (plant && plant != Py_None) { /* the plant model: {"ints": array('i'), "dbl": array('d')} */
        PyObject *pi = PyDict_Check(plant) ? PyDict_GetItemString(plant, "ints") : NULL;
        PyObject *pd = PyDict_Check(plant) ? PyDict_GetItemString(plant, "dbl") : NULL;
        if (!pi || !pd) {
            PyErr_SetString(PyExc_ValueError, "params.plant: expected a dict with 'ints' and 'dbl' arrays");
            goto done;
        }
        if (get_buf(pi, "params.plant.ints", "il", 4, -1, 0, &views[nv]) < 0) goto done;
        p.plant_ints = views[nv].buf;
        p.n_plant_ints = (uint32_t)(views[nv].len / 4);
        nv++;
        if (get_buf(pd, "params.plant.dbl", "d", 8, -1, 0, &views[nv]) < 0) goto done;
        p.plant_dbl = views[nv].buf;
        p.n_plant_dbl = (uint32_t)(views[nv].len / 8);
        nv++;
    }
    static const char *onames[5] = {"values", "quality", "regs", "bits", "changed"};
    static const char *ofmts[5] = {"f", "H", "H", "Bb", "Bb"};
    static const Py_ssize_t osz[5] = {4, 2, 2, 1, 1};
    Py_ssize_t ocount[5] = {p.n, p.n, p.n_regs, p.n_bits, p.n};
    for (int k = 0; k < 5; k++) {
        if (get_buf(bufs[k], onames[k], ofmts[k], osz[k], ocount[k], 1, &self->out[k]) < 0) goto done;
        self->n_out++;
    }
    gg_out out = {self->out[0].buf, self->out[1].buf, self->out[2].buf, self->out[3].buf, self->out[4].buf};
    char err[200] = "";
    self->core = gg_create(&p, out, err, sizeof err);
    if (!self->core) {
        PyErr_Format(PyExc_ValueError, "firmware parameters rejected: %s", err);
        goto done;
    }
    self->n = p.n;
    self->n_regs = p.n_regs;
    self->n_bits = p.n_bits;
    rc = 0;
done:
    for (int k = 0; k < nv; k++) PyBuffer_Release(&views[k]);
    if (rc < 0) {
        for (int k = 0; k < self->n_out; k++) PyBuffer_Release(&self->out[k]);
        self->n_out = 0;
    }
    return rc;
}

static void Sampler_dealloc(Sampler *self) {
    PyTypeObject *tp = Py_TYPE((PyObject *)self);
    if (self->core) {
        Py_BEGIN_ALLOW_THREADS
        gg_destroy(self->core);
        Py_END_ALLOW_THREADS
        self->core = NULL;
    }
    for (int k = 0; k < self->n_out; k++) PyBuffer_Release(&self->out[k]);
    freefunc f = (freefunc)PyType_GetSlot(tp, Py_tp_free);
    f(self);
    Py_DECREF(tp);
}

static int ready(Sampler *self) {
    if (!self->core) {
        PyErr_SetString(PyExc_RuntimeError, "Sampler is not initialised");
        return 0;
    }
    return 1;
}

static int check_index(Sampler *self, long i) {
    if (i < 0 || (unsigned long)i >= self->n) {
        PyErr_Format(PyExc_IndexError, "point index %ld out of range 0..%u", i, self->n ? self->n - 1 : 0);
        return 0;
    }
    return 1;
}

static PyObject *Sampler_tick(Sampler *self, PyObject *arg) {
    if (!ready(self)) return NULL;
    double t = PyFloat_AsDouble(arg);
    if (t == -1.0 && PyErr_Occurred()) return NULL;
    if (t != t || t - t != 0.0) {
        PyErr_SetString(PyExc_ValueError, "tick(t): t must be a finite number of seconds");
        return NULL;
    }
    if (gg_running(self->core)) {
        PyErr_SetString(PyExc_RuntimeError, "tick(t) while the sampling thread runs; call stop() first");
        return NULL;
    }
    if (self->n >= GIL_FREE_POINTS) {
        Py_BEGIN_ALLOW_THREADS
        gg_tick(self->core, t);
        Py_END_ALLOW_THREADS
    } else {
        gg_tick(self->core, t);
    }
    Py_RETURN_NONE;
}

static PyObject *Sampler_bench(Sampler *self, PyObject *args) {
    double t0, dt;
    long count;
    if (!ready(self) || !PyArg_ParseTuple(args, "ddl", &t0, &dt, &count)) return NULL;
    if (gg_running(self->core)) {
        PyErr_SetString(PyExc_RuntimeError, "bench while the sampling thread runs; call stop() first");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    for (long k = 0; k < count; k++) gg_tick(self->core, t0 + (double)k * dt);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *Sampler_start(Sampler *self, PyObject *args) {
    double period, spin = 0.0;
    int realtime = 0;
    if (!ready(self) || !PyArg_ParseTuple(args, "d|pd", &period, &realtime, &spin)) return NULL;
    if (!(period > 0.0) || period - period != 0.0) {
        PyErr_Format(PyExc_ValueError, "start(period): period must be a positive number of seconds, got %R",
                     PyTuple_GetItem(args, 0));
        return NULL;
    }
    if (!(spin >= 0.0) || spin >= period) {
        PyErr_Format(PyExc_ValueError, "start(spin=%R): spin must be >= 0 and shorter than the period", PyTuple_GetItem(args, 2));
        return NULL;
    }
    int rc = gg_start(self->core, period, realtime, spin);
    if (rc == -2) {
        PyErr_SetString(PyExc_RuntimeError, "start(): the sampling thread already runs; call stop() first");
        return NULL;
    }
    if (rc != 0) {
        PyErr_SetString(PyExc_OSError, "start(): could not create the sampling thread");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Sampler_stop(Sampler *self, PyObject *unused) {
    (void)unused;
    if (!ready(self)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    gg_stop(self->core);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *Sampler_running(Sampler *self, PyObject *unused) {
    (void)unused;
    if (!ready(self)) return NULL;
    return PyBool_FromLong(gg_running(self->core));
}

static PyObject *Sampler_snapshot_into(Sampler *self, PyObject *args) {
    PyObject *vo, *qo;
    if (!ready(self) || !PyArg_ParseTuple(args, "OO", &vo, &qo)) return NULL;
    Py_buffer vb, qb;
    if (get_buf(vo, "values", "f", 4, self->n, 1, &vb) < 0) return NULL;
    if (get_buf(qo, "quality", "H", 2, self->n, 1, &qb) < 0) {
        PyBuffer_Release(&vb);
        return NULL;
    }
    double t;
    Py_BEGIN_ALLOW_THREADS
    t = gg_read_snapshot(self->core, vb.buf, qb.buf);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&vb);
    PyBuffer_Release(&qb);
    return PyFloat_FromDouble(t);
}

/* (t, bytes): `count` registers from `start`, each big-endian as on the wire */
static PyObject *Sampler_read_regs(Sampler *self, PyObject *args) {
    unsigned long start, count;
    if (!ready(self) || !PyArg_ParseTuple(args, "kk", &start, &count)) return NULL;
    if (start + count > self->n_regs || start + count < start) {
        PyErr_Format(PyExc_IndexError, "registers %lu..%lu outside the image of %u", start, start + count, self->n_regs);
        return NULL;
    }
    uint16_t *tmp = PyMem_Malloc(sizeof(uint16_t) * (count ? count : 1));
    if (!tmp) return PyErr_NoMemory();
    double t = gg_read_regs(self->core, (uint32_t)start, (uint32_t)count, tmp);
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(2 * count));
    if (b) {
        unsigned char *d = (unsigned char *)PyBytes_AsString(b);
        for (unsigned long k = 0; k < count; k++) {
            d[2 * k] = (unsigned char)(tmp[k] >> 8);
            d[2 * k + 1] = (unsigned char)(tmp[k] & 0xff);
        }
    }
    PyMem_Free(tmp);
    if (!b) return NULL;
    return Py_BuildValue("(dN)", t, b);
}

static PyObject *Sampler_read_bits(Sampler *self, PyObject *args) {
    unsigned long start, count;
    if (!ready(self) || !PyArg_ParseTuple(args, "kk", &start, &count)) return NULL;
    if (start + count > self->n_bits || start + count < start) {
        PyErr_Format(PyExc_IndexError, "bits %lu..%lu outside the image of %u", start, start + count, self->n_bits);
        return NULL;
    }
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)count);
    if (!b) return NULL;
    double t = gg_read_bits(self->core, (uint32_t)start, (uint32_t)count, (uint8_t *)PyBytes_AsString(b));
    return Py_BuildValue("(dN)", t, b);
}

static PyObject *positions(const int32_t *pos, uint32_t k) {
    PyObject *lst = PyList_New(k);
    for (uint32_t j = 0; lst && j < k; j++) {
        PyObject *o = PyLong_FromLong(pos[j]);
        if (!o) {
            Py_CLEAR(lst);
            break;
        }
        PyList_SetItem(lst, j, o);
    }
    return lst;
}

static PyObject *Sampler_take_changed_in(Sampler *self, PyObject *arg) {
    if (!ready(self)) return NULL;
    Py_buffer sel;
    if (PyObject_GetBuffer(arg, &sel, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) return NULL;
    PyObject *lst = NULL;
    if (sel.itemsize != 4 || !sel.format || (strcmp(sel.format, "i") && strcmp(sel.format, "=i") && strcmp(sel.format, "l"))) {
        PyErr_SetString(PyExc_TypeError, "take_changed_in(sel): sel must be an array('i') of point indices");
        goto done;
    }
    uint32_t n = (uint32_t)(sel.len / 4);
    const int32_t *s = (const int32_t *)sel.buf;
    for (uint32_t j = 0; j < n; j++) {
        if (s[j] < 0 || (uint32_t)s[j] >= self->n) {
            PyErr_Format(PyExc_IndexError, "take_changed_in: sel[%u] = %d outside the points 0..%u", j, (int)s[j],
                         self->n ? self->n - 1 : 0);
            goto done;
        }
    }
    int32_t *pos = PyMem_Malloc(sizeof(int32_t) * (n ? n : 1));
    if (!pos) {
        PyErr_NoMemory();
        goto done;
    }
    lst = positions(pos, gg_take_changed_in(self->core, s, n, pos));
    PyMem_Free(pos);
done:
    PyBuffer_Release(&sel);
    return lst;
}

static PyObject *Sampler_take_changed(Sampler *self, PyObject *unused) {
    (void)unused;
    if (!ready(self)) return NULL;
    int32_t *idx = PyMem_Malloc(sizeof(int32_t) * (self->n ? self->n : 1));
    if (!idx) return PyErr_NoMemory();
    uint32_t k = gg_take_changed(self->core, idx, self->n);
    PyObject *lst = PyList_New(k);
    for (uint32_t j = 0; lst && j < k; j++) {
        PyObject *o = PyLong_FromLong(idx[j]);
        if (!o) {
            Py_CLEAR(lst);
            break;
        }
        PyList_SetItem(lst, j, o);
    }
    PyMem_Free(idx);
    return lst;
}

static PyObject *Sampler_set_state(Sampler *self, PyObject *args) {
    long i;
    double v;
    if (!ready(self) || !PyArg_ParseTuple(args, "ld", &i, &v) || !check_index(self, i)) return NULL;
    if (gg_set_state(self->core, (uint32_t)i, v) != 0) {
        PyErr_Format(PyExc_ValueError, "point %ld holds no state (only discrete and constant points accept set_state)", i);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* plant_fault(i, code, value): a physical event on the plant equipment point i reads */
static PyObject *Sampler_plant_fault(Sampler *self, PyObject *args) {
    long i;
    int code;
    double v;
    if (!ready(self) || !PyArg_ParseTuple(args, "lid", &i, &code, &v) || !check_index(self, i)) return NULL;
    int rc = gg_plant_fault_at(self->core, (uint32_t)i, code, v);
    if (rc != 0) {
        PyErr_Format(PyExc_ValueError, "point %ld: plant event %d does not apply to its equipment", i, code);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Sampler_set_fault(Sampler *self, PyObject *args) {
    long i;
    int kind, qflags = 0;
    double a = 0, b = 0, c = 0;
    if (!ready(self) || !PyArg_ParseTuple(args, "li|dddi", &i, &kind, &a, &b, &c, &qflags) || !check_index(self, i))
        return NULL;
    if (kind < GG_F_STUCK || kind > GG_F_QUALITY) {
        PyErr_Format(PyExc_ValueError, "unknown fault kind code %d", kind);
        return NULL;
    }
    gg_fault f;
    memset(&f, 0, sizeof f);
    f.pt = (int32_t)i;
    f.kind = (uint8_t)kind;
    f.a = a;
    f.b = b;
    f.c = c;
    f.qflags = (uint16_t)qflags;
    if (gg_set_fault(self->core, &f) != 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *Sampler_clear_faults(Sampler *self, PyObject *args) {
    long i;
    if (!ready(self) || !PyArg_ParseTuple(args, "l", &i) || !check_index(self, i)) return NULL;
    gg_clear_faults(self->core, (uint32_t)i);
    Py_RETURN_NONE;
}

/* (bytes of float32 lateness in us, ticks, skipped) of the sampling thread's recent ticks */
static PyObject *Sampler_lateness(Sampler *self, PyObject *unused) {
    (void)unused;
    if (!ready(self)) return NULL;
    float *buf = PyMem_Malloc(sizeof(float) * GG_LATE_CAP);
    if (!buf) return PyErr_NoMemory();
    uint64_t ticks = 0, skipped = 0;
    uint32_t n = gg_lateness(self->core, buf, GG_LATE_CAP, &ticks, &skipped);
    PyObject *b = PyBytes_FromStringAndSize((const char *)buf, (Py_ssize_t)n * 4);
    PyMem_Free(buf);
    if (!b) return NULL;
    return Py_BuildValue("(NKK)", b, (unsigned long long)ticks, (unsigned long long)skipped);
}

static PyMethodDef Sampler_methods[] = {
    {"tick", (PyCFunction)Sampler_tick, METH_O, "tick(t): compute every point at simulated time t and publish"},
    {"bench", (PyCFunction)Sampler_bench, METH_VARARGS, "bench(t0, dt, count): count ticks without the GIL"},
    {"start", (PyCFunction)Sampler_start, METH_VARARGS, "start(period, realtime=False, spin=0.0): run the sampling thread"},
    {"stop", (PyCFunction)Sampler_stop, METH_NOARGS, "stop(): stop and join the sampling thread"},
    {"running", (PyCFunction)Sampler_running, METH_NOARGS, "running() -> bool"},
    {"snapshot_into", (PyCFunction)Sampler_snapshot_into, METH_VARARGS, "snapshot_into(values, quality) -> t"},
    {"read_regs", (PyCFunction)Sampler_read_regs, METH_VARARGS, "read_regs(start, count) -> (t, big-endian bytes)"},
    {"read_bits", (PyCFunction)Sampler_read_bits, METH_VARARGS, "read_bits(start, count) -> (t, bytes of 0/1)"},
    {"take_changed", (PyCFunction)Sampler_take_changed, METH_NOARGS, "take_changed() -> list of indices"},
    {"take_changed_in", (PyCFunction)Sampler_take_changed_in, METH_O,
     "take_changed_in(sel: array('i')) -> positions in sel of the points that changed (their flags cleared)"},
    {"set_state", (PyCFunction)Sampler_set_state, METH_VARARGS, "set_state(i, value)"},
    {"plant_fault", (PyCFunction)Sampler_plant_fault, METH_VARARGS, "plant_fault(i, code, value): physical event"},
    {"set_fault", (PyCFunction)Sampler_set_fault, METH_VARARGS, "set_fault(i, kind, a, b, c, qflags)"},
    {"clear_faults", (PyCFunction)Sampler_clear_faults, METH_VARARGS, "clear_faults(i)"},
    {"lateness", (PyCFunction)Sampler_lateness, METH_NOARGS, "lateness() -> (float32 bytes us, ticks, skipped)"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Sampler_slots[] = {
    {Py_tp_doc, "The C sampling core of one Firmware (see firmware_sim.native)."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, Sampler_init},
    {Py_tp_dealloc, Sampler_dealloc},
    {Py_tp_methods, Sampler_methods},
    {0, NULL},
};

static PyType_Spec Sampler_spec = {"firmware_sim._native.Sampler", sizeof(Sampler), 0, Py_TPFLAGS_DEFAULT, Sampler_slots};

static int native_exec(PyObject *m) {
    PyObject *t = PyType_FromSpec(&Sampler_spec);
    if (!t) return -1;
    if (PyModule_AddObject(m, "Sampler", t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot native_slots[] = {{Py_mod_exec, native_exec}, {0, NULL}};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "firmware_sim._native", "C sampling core of the simulated firmware.", 0, NULL, native_slots,
    NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModuleDef_Init(&native_module); }
