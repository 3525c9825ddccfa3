#ifndef CMPI_SHIM_H
#define CMPI_SHIM_H
#include <mpi.h>

// MPI names its handles with macros that expand to casts of addresses of
// library globals; Swift imports none of them, so each gets a function here.

// MPI_COMM_WORLD: the communicator of every rank mpirun started.
static inline MPI_Comm cmpi_comm_world(void) { return MPI_COMM_WORLD; }
// MPI_FLOAT / MPI_DOUBLE / MPI_BYTE / MPI_INT: element types.
static inline MPI_Datatype cmpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype cmpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype cmpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype cmpi_int(void) { return MPI_INT; }
// MPI_UINT16_T: carries IEEE binary16 gradients (MPI has no half type; a user op sums them).
static inline MPI_Datatype cmpi_uint16(void) { return MPI_UINT16_T; }
// MPI_STATUSES_IGNORE: for MPI_Testall / MPI_Waitall when the statuses are not read.
static inline MPI_Status *cmpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
// MPI_STATUS_IGNORE: for MPI_Test when the status is not read.
static inline MPI_Status *cmpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
// MPI_SUM / MPI_MAX: reduction operations.
static inline MPI_Op cmpi_sum(void) { return MPI_SUM; }
static inline MPI_Op cmpi_max(void) { return MPI_MAX; }
// MPI_IN_PLACE: the sentinel send buffer that makes a reduction overwrite its input.
static inline void *cmpi_in_place(void) { return MPI_IN_PLACE; }
// MPI_ERRORS_RETURN: so failures come back as return codes instead of aborting.
static inline MPI_Errhandler cmpi_errors_return(void) { return MPI_ERRORS_RETURN; }
// MPI_SUCCESS and MPI_MAX_ERROR_STRING are enum/macro constants Swift may not see as Int32.
static inline int cmpi_success(void) { return MPI_SUCCESS; }
static inline int cmpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int cmpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }

#endif
