#!/usr/bin/env python3
"""Generates include/mpi.h and include/mpif.h from the crate's sources (src/capi.rs for the
prototypes, src/dtype.rs for the datatypes) and the constant table below, which mirrors
src/handles.rs. Run it after changing any of them: python3 tools/gen_headers.py"""
import re, os
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
src = lambda f: open(os.path.join(root, 'src', f)).read()

K = 26
COMM, GROUP, DTYPE, OP, REQ, EH = (k << K for k in range(1, 7))

dtypes = re.findall(r'\((\d+), "(MPI_\w+)", Prim::', src('dtype.rs'))
dtypes = [(n, DTYPE | int(i)) for i, n in dtypes]
dalias = [('MPI_LONG_LONG', 'MPI_LONG_LONG_INT'), ('MPI_C_COMPLEX', 'MPI_C_FLOAT_COMPLEX')]
ops = ['MPI_MAX', 'MPI_MIN', 'MPI_SUM', 'MPI_PROD', 'MPI_LAND', 'MPI_BAND', 'MPI_LOR', 'MPI_BOR',
       'MPI_LXOR', 'MPI_BXOR', 'MPI_MINLOC', 'MPI_MAXLOC', 'MPI_REPLACE', 'MPI_NO_OP']
errs = ['SUCCESS', 'ERR_BUFFER', 'ERR_COUNT', 'ERR_TYPE', 'ERR_TAG', 'ERR_COMM', 'ERR_RANK',
        'ERR_REQUEST', 'ERR_ROOT', 'ERR_GROUP', 'ERR_OP', 'ERR_TOPOLOGY', 'ERR_DIMS', 'ERR_ARG',
        'ERR_UNKNOWN', 'ERR_TRUNCATE', 'ERR_OTHER', 'ERR_INTERN', 'ERR_IN_STATUS', 'ERR_PENDING',
        'ERR_KEYVAL', 'ERR_NO_MEM']
ints = [
    ('MPI_COMM_NULL', 0), ('MPI_COMM_WORLD', COMM | 1), ('MPI_COMM_SELF', COMM | 2),
    ('MPI_GROUP_NULL', 0), ('MPI_GROUP_EMPTY', GROUP | 1),
    ('MPI_DATATYPE_NULL', 0), ('MPI_OP_NULL', 0), ('MPI_REQUEST_NULL', 0),
    ('MPI_ERRHANDLER_NULL', 0), ('MPI_ERRORS_ARE_FATAL', EH | 1), ('MPI_ERRORS_RETURN', EH | 2),
    ('MPI_INFO_NULL', 0), ('MPI_INFO_ENV', 0),
] + dtypes + [(n, OP | (i + 1)) for i, n in enumerate(ops)] + [
    ('MPI_PROC_NULL', -1), ('MPI_ANY_SOURCE', -2), ('MPI_ROOT', -3), ('MPI_ANY_TAG', -1),
    ('MPI_UNDEFINED', -32766), ('MPI_KEYVAL_INVALID', 0),
    ('MPI_TAG_UB', 1), ('MPI_HOST', 2), ('MPI_IO', 3), ('MPI_WTIME_IS_GLOBAL', 4),
    ('MPI_UNIVERSE_SIZE', 5), ('MPI_APPNUM', 6),
    ('MPI_IDENT', 0), ('MPI_CONGRUENT', 1), ('MPI_SIMILAR', 2), ('MPI_UNEQUAL', 3),
    ('MPI_THREAD_SINGLE', 0), ('MPI_THREAD_FUNNELED', 1), ('MPI_THREAD_SERIALIZED', 2),
    ('MPI_THREAD_MULTIPLE', 3),
    ('MPI_GRAPH', 2), ('MPI_CART', 1), ('MPI_DIST_GRAPH', 3),
    ('MPI_MAX_PROCESSOR_NAME', 128), ('MPI_MAX_ERROR_STRING', 512),
    ('MPI_MAX_OBJECT_NAME', 128), ('MPI_MAX_LIBRARY_VERSION_STRING', 8192),
    ('MPI_BSEND_OVERHEAD', 96), ('MPI_COMM_TYPE_SHARED', 1),
    ('MPI_ORDER_C', 56), ('MPI_ORDER_FORTRAN', 57),
    ('MPI_VERSION', 3), ('MPI_SUBVERSION', 1),
] + [('MPI_' + e, i) for i, e in enumerate(errs)] + [('MPI_ERR_LASTCODE', len(errs) - 1)]

# ---------------- mpi.h ----------------
cap = src('capi.rs')
protos = re.findall(r'fn (MPIX?_\w+) / PMPIX?_\w+\((.*?)\) \[', cap, re.S)
families = {'Type': 'MPI_Datatype', 'Comm': 'MPI_Comm', 'Cart': 'MPI_Comm', 'Group': 'MPI_Group',
            'Op': 'MPI_Op'}

def ctype(fn, name, ty):
    ty = ty.strip()
    fam = fn.split('_')[1]
    handle = None
    if name in ('comm',) or (fam == 'Comm' and name in ('a', 'b')):
        handle = 'MPI_Comm'
    elif name in ('dt', 'st', 'rt', 'stype', 'rtype', 'old'):
        handle = 'MPI_Datatype'
    elif name == 'op':
        handle = 'MPI_Op'
    elif name in ('req', 'reqs'):
        handle = 'MPI_Request'
    elif name == 'eh':
        handle = 'MPI_Errhandler'
    elif name in ('g', 'group') or (fam == 'Group' and name in ('a', 'b')):
        handle = 'MPI_Group'
    elif name == 'new':
        handle = families.get(fam, 'MPI_Comm')
    elif name in ('sts', 'rts', 'ts'):
        handle = 'MPI_Datatype'
    base = {'c_int': 'int', 'c_void': 'void', 'MpiStatus': 'MPI_Status', 'Aint': 'MPI_Aint',
            'c_char': 'char', 'usize': 'size_t'}
    if ty == 'Option<UserFn>':
        return 'MPI_User_function *' + name
    m = re.fullmatch(r'((?:\*(?:mut|const) )*)(\w+)', ty)
    stars, b = m.group(1), m.group(2)
    n = stars.count('*')
    t = handle if (handle and b == 'c_int') else base[b]
    const = 'const ' if stars.startswith('*const') else ''
    name = {'new': 'newobj', 'class': 'errorclass'}.get(name, name.lstrip('_'))
    return f"{const}{t} {'*' * n}{name}"

lines = []
for fn, args in protos:
    if fn.startswith('MPIX_Ckpt_') and '#define MPIX_CKPT 1' not in lines:
        lines += ['',
                  '/* The self checkpointer (docs/abi.md, "Checkpoints"): protected regions are saved',
                  '   at the safepoint where a checkpoint is due and refilled by MPIX_Ckpt_recover',
                  '   after a restart. A protected region must stay valid until it is unprotected;',
                  '   safepoints must be collective in effect. */',
                  '#define MPIX_CKPT 1']
    args = [a.strip() for a in args.replace('\n', ' ').split(',') if a.strip()]
    cargs = [ctype(fn, *a.split(':', 1)) for a in args]
    a = ', '.join(cargs) if cargs else 'void'
    lines.append(f'int {fn}({a});')
    lines.append(f'int P{fn}({a});')
lines += ['double MPI_Wtime(void);', 'double PMPI_Wtime(void);', 'double MPI_Wtick(void);',
          'double PMPI_Wtick(void);']

h = ['/* mpi.h: the C interface of mpicr\'s libmpi. Generated by tools/gen_headers.py;',
     '   layouts and conventions are documented in docs/abi.md. */',
     '#ifndef MPICR_MPI_H', '#define MPICR_MPI_H', '', '#include <stddef.h>', '',
     '#ifdef __cplusplus', 'extern "C" {', '#endif', '',
     '#define MPICR 1',
     'typedef int MPI_Comm;', 'typedef int MPI_Datatype;', 'typedef int MPI_Op;',
     'typedef int MPI_Request;', 'typedef int MPI_Group;', 'typedef int MPI_Errhandler;',
     'typedef int MPI_Info;', 'typedef int MPI_Fint;', 'typedef long MPI_Aint;',
     'typedef long long MPI_Offset;', 'typedef long long MPI_Count;', '',
     '/* Five ints; Fortran sees the same array (MPI_STATUS_SIZE = 5). */',
     'typedef struct MPI_Status {', '    int MPI_SOURCE;', '    int MPI_TAG;', '    int MPI_ERROR;',
     '    int mpicr_count_lo;            /* bytes received, low 32 bits */',
     '    int mpicr_count_hi_cancelled;  /* bits 0-30: high bits of the count; bit 31: cancelled */',
     '} MPI_Status;', '',
     'typedef void (MPI_User_function)(void *invec, void *inoutvec, int *len, MPI_Datatype *datatype);',
     '',
     '#define MPI_BOTTOM ((void *)0)', '#define MPI_IN_PLACE ((void *)-1)',
     '#define MPI_STATUS_IGNORE ((MPI_Status *)1)', '#define MPI_STATUSES_IGNORE ((MPI_Status *)1)',
     '#define MPI_ERRCODES_IGNORE ((int *)0)',
     '#define MPI_ARGV_NULL ((char **)0)', '#define MPI_ARGVS_NULL ((char ***)0)', '']
for n, v in ints:
    h.append(f'#define {n} ({v})' if v < 0 else f'#define {n} {v}')
for a, b in dalias:
    h.append(f'#define {a} {b}')
h += ['', '/* Handles are the same ints in Fortran. */']
for k in ['Comm', 'Type', 'Op', 'Request', 'Group', 'Errhandler', 'Info']:
    ct = {'Type': 'MPI_Datatype'}.get(k, 'MPI_' + k)
    h.append(f'#define MPI_{k}_c2f(h) ((MPI_Fint)(h))')
    h.append(f'#define MPI_{k}_f2c(h) (({ct})(h))')
h += ['', *lines, '', '#ifdef __cplusplus', '}', '#endif', '#endif', '']
open(os.path.join(root, 'include', 'mpi.h'), 'w').write('\n'.join(h))

# ---------------- mpif.h ----------------
f = ['! mpif.h: the Fortran 77 interface of mpicr\'s libmpi. Generated by',
     '! tools/gen_headers.py; see docs/abi.md. Valid as fixed and free form.']
def decl(name, value):
    f.append(f'      INTEGER {name}')
    f.append(f'      PARAMETER ({name}={value})')
fnames = set()
for n, v in ints + [('MPI_STATUS_SIZE', 5), ('MPI_SOURCE', 1), ('MPI_TAG', 2), ('MPI_ERROR', 3),
                    ('MPI_ADDRESS_KIND', 8), ('MPI_OFFSET_KIND', 8), ('MPI_COUNT_KIND', 8),
                    ('MPI_INTEGER_KIND', 4)]:
    if n in fnames:
        continue
    fnames.add(n)
    decl(n, v)
for a, b in dalias:
    decl(a, dict(ints)[b])
f += ['      INTEGER MPI_BOTTOM, MPI_IN_PLACE',
      '      INTEGER MPI_STATUS_IGNORE(MPI_STATUS_SIZE)',
      '      INTEGER MPI_STATUSES_IGNORE(MPI_STATUS_SIZE,1)',
      '      COMMON /MPICR_FBOTTOM/ MPI_BOTTOM',
      '      COMMON /MPICR_FINPLACE/ MPI_IN_PLACE',
      '      COMMON /MPICR_FSTATIGN/ MPI_STATUS_IGNORE',
      '      COMMON /MPICR_FSTATSIGN/ MPI_STATUSES_IGNORE',
      '      SAVE /MPICR_FBOTTOM/, /MPICR_FINPLACE/',
      '      SAVE /MPICR_FSTATIGN/, /MPICR_FSTATSIGN/',
      '      DOUBLE PRECISION MPI_WTIME, MPI_WTICK',
      '      EXTERNAL MPI_WTIME, MPI_WTICK',
      '! The self checkpointer (docs/abi.md): MPIX_CKPT_PROTECT(ID, BUF,',
      '! BYTES, IERROR) with INTEGER(KIND=MPI_ADDRESS_KIND) BYTES,',
      '! MPIX_CKPT_UNPROTECT(ID, IERROR), MPIX_CKPT_RESTARTED(FLAG,',
      '! IERROR) with LOGICAL FLAG, and MPIX_CKPT_RECOVER, _SAFEPOINT,',
      '! _REQUEST, _DISABLE, _ENABLE, each with IERROR only.',
      '      INTEGER MPIX_CKPT',
      '      PARAMETER (MPIX_CKPT=1)', '']
for l in f:
    assert len(l) <= 72, l
open(os.path.join(root, 'include', 'mpif.h'), 'w').write('\n'.join(f))
print(len(protos), 'functions')
