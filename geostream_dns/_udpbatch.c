/* Datagrams in and out in batches: recvmmsg(2) and sendmmsg(2) for the UDP
 * transport (geostream_dns/adapters/udp.py).
 *
 * Why: a Python server spends most of each answer's CPU not in Python but in
 * the two system calls and the event loop's bookkeeping around them, once per
 * datagram. Under load, reading up to BATCH datagrams with one call and
 * sending the replies with one call cuts that per-datagram cost; when idle a
 * batch is one datagram and nothing changes.
 *
 *   recv(fd) -> list of (data: bytes, host: str, address: bytes)
 *       Reads what is waiting, up to BATCH datagrams, without blocking ([] when
 *       nothing is). `host` is the sender's address as text (what the rest of
 *       the server keys clients by); `address` is the raw sockaddr, handed back
 *       to send() as is.
 *   send(fd, replies: list of (data: bytes, address: bytes)) -> (sent, refused)
 *       Sends them, in order, without blocking. `sent` went out; `refused` the
 *       kernel would not send to their address (port 0, a firewall, ...), which
 *       costs the others nothing; the rest (when the send buffer is full) did
 *       not go.
 *
 * Neither call blocks, so neither releases the interpreter lock: both run on
 * the event loop's thread, which owns the static buffers below.
 */

#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 32
#define DATAGRAM 65536 /* the largest UDP payload: nothing is ever cut short */

static char buffers[BATCH][DATAGRAM];
static struct sockaddr_storage names[BATCH];
static struct iovec iovecs[BATCH];
static struct mmsghdr messages[BATCH];

static PyObject *
host_text(const struct sockaddr_storage *name)
{
    char text[INET6_ADDRSTRLEN];
    if (name->ss_family == AF_INET) {
        const unsigned char *a =
            (const unsigned char *)&((const struct sockaddr_in *)name)->sin_addr;
        /* dotted quad by hand: inet_ntop and format strings cost more */
        char *p = text;
        for (int i = 0; i < 4; i++) {
            unsigned v = a[i];
            if (v >= 100) {
                *p++ = (char)('0' + v / 100);
                *p++ = (char)('0' + (v / 10) % 10);
            } else if (v >= 10) {
                *p++ = (char)('0' + v / 10);
            }
            *p++ = (char)('0' + v % 10);
            if (i < 3)
                *p++ = '.';
        }
        return PyUnicode_DecodeASCII(text, p - text, NULL);
    }
    if (name->ss_family == AF_INET6) {
        if (inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)name)->sin6_addr, text,
                      sizeof text) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return PyUnicode_DecodeASCII(text, strlen(text), NULL);
    }
    PyErr_SetString(PyExc_ValueError, "not an IPv4 or IPv6 address");
    return NULL;
}

static PyObject *
batch_recv(PyObject *self, PyObject *arg)
{
    int fd = PyObject_AsFileDescriptor(arg);
    if (fd < 0)
        return NULL;
    for (int i = 0; i < BATCH; i++) {
        iovecs[i].iov_base = buffers[i];
        iovecs[i].iov_len = DATAGRAM;
        memset(&messages[i].msg_hdr, 0, sizeof messages[i].msg_hdr);
        messages[i].msg_hdr.msg_name = &names[i];
        messages[i].msg_hdr.msg_namelen = sizeof names[i];
        messages[i].msg_hdr.msg_iov = &iovecs[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    int got = recvmmsg(fd, messages, BATCH, MSG_DONTWAIT, NULL);
    if (got < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return PyList_New(0);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *out = PyList_New(got);
    if (out == NULL)
        return NULL;
    for (int i = 0; i < got; i++) {
        PyObject *data = PyBytes_FromStringAndSize(buffers[i], messages[i].msg_len);
        PyObject *host = data ? host_text(&names[i]) : NULL;
        PyObject *address = host ? PyBytes_FromStringAndSize(
                                       (const char *)&names[i], messages[i].msg_hdr.msg_namelen)
                                 : NULL;
        PyObject *item = address ? PyTuple_Pack(3, data, host, address) : NULL;
        Py_XDECREF(data);
        Py_XDECREF(host);
        Py_XDECREF(address);
        if (item == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, item);
    }
    return out;
}

static PyObject *
batch_send(PyObject *self, PyObject *args)
{
    PyObject *sock, *replies;
    if (!PyArg_ParseTuple(args, "OO!:send", &sock, &PyList_Type, &replies))
        return NULL;
    int fd = PyObject_AsFileDescriptor(sock);
    if (fd < 0)
        return NULL;
    Py_ssize_t total = PyList_GET_SIZE(replies), at = 0, sent = 0, refused = 0;
    while (at < total) {
        int n = 0;
        for (Py_ssize_t j = at; j < total && n < BATCH; j++, n++) {
            PyObject *item = PyList_GET_ITEM(replies, j);
            PyObject *data, *address;
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
                !PyBytes_Check(data = PyTuple_GET_ITEM(item, 0)) ||
                !PyBytes_Check(address = PyTuple_GET_ITEM(item, 1)) ||
                PyBytes_GET_SIZE(address) > (Py_ssize_t)sizeof(struct sockaddr_storage)) {
                PyErr_SetString(PyExc_TypeError,
                                "send: expected a list of (bytes, address bytes) pairs");
                return NULL;
            }
            iovecs[n].iov_base = PyBytes_AS_STRING(data);
            iovecs[n].iov_len = (size_t)PyBytes_GET_SIZE(data);
            memset(&messages[n].msg_hdr, 0, sizeof messages[n].msg_hdr);
            messages[n].msg_hdr.msg_name = PyBytes_AS_STRING(address);
            messages[n].msg_hdr.msg_namelen = (socklen_t)PyBytes_GET_SIZE(address);
            messages[n].msg_hdr.msg_iov = &iovecs[n];
            messages[n].msg_hdr.msg_iovlen = 1;
        }
        int done = sendmmsg(fd, messages, (unsigned)n, MSG_DONTWAIT);
        if (done < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
                break; /* the send buffer is full: the rest do not go */
            /* the first message's destination was refused: skip it alone */
            refused += 1;
            at += 1;
            continue;
        }
        /* fewer than n: the next call starts at the one that failed and says why */
        sent += done;
        at += done;
    }
    return Py_BuildValue("(nn)", sent, refused);
}

static PyMethodDef methods[] = {
    {"recv", batch_recv, METH_O, "Read up to BATCH waiting datagrams: [(data, host, address)]."},
    {"send", batch_send, METH_VARARGS,
     "Send [(data, address)]; returns (sent, refused for their address)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "geostream_dns._udpbatch",
    "UDP datagrams in and out in batches (recvmmsg, sendmmsg).", -1, methods,
};

PyMODINIT_FUNC
PyInit__udpbatch(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "BATCH", BATCH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
