/* Open MPI (libmpi.so.40): the entry points and handle symbols SegDistributed resolves with dlsym,
 * with the exact C signatures of mpi.h, so that nothing MPI is needed to build. Open MPI's handles
 * are pointers to opaque structs, and its predefined handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM)
 * are the addresses of library globals (ompi_mpi_comm_world, ...), which dlsym returns.
 * Defining CMPI_CHECK after including the real mpi.h turns the aliases into the real types, so
 * that a test compiles every typedef below against Open MPI's own declarations. */
#ifndef CMPI_H
#define CMPI_H

/* MARK: - Types */

#ifdef CMPI_CHECK
typedef MPI_Comm cmpi_Comm;
typedef MPI_Datatype cmpi_Datatype;
typedef MPI_Op cmpi_Op;
typedef MPI_Request cmpi_Request;
typedef MPI_Info cmpi_Info;
typedef MPI_Status cmpi_Status;
_Static_assert(MPI_SUCCESS == 0, "MPI_SUCCESS is 0");
_Static_assert(MPI_THREAD_SERIALIZED == 2 && MPI_THREAD_MULTIPLE == 3, "MPI_THREAD_* values");
_Static_assert(MPI_COMM_TYPE_SHARED == 0, "MPI_COMM_TYPE_SHARED is 0");
_Static_assert(sizeof(MPI_Comm) == sizeof(void *) && sizeof(MPI_Request) == sizeof(void *), "handles are pointers");
#else
typedef void *cmpi_Comm;     /* struct ompi_communicator_t * */
typedef void *cmpi_Datatype; /* struct ompi_datatype_t * */
typedef void *cmpi_Op;       /* struct ompi_op_t * */
typedef void *cmpi_Request;  /* struct ompi_request_t * */
typedef void *cmpi_Info;     /* struct ompi_info_t * */
typedef struct cmpi_Status cmpi_Status; /* only ever passed as MPI_STATUS_IGNORE (NULL) */
#endif

#define CMPI_SUCCESS 0
#define CMPI_THREAD_SERIALIZED 2
#define CMPI_THREAD_MULTIPLE 3
#define CMPI_COMM_TYPE_SHARED 0

/* MARK: - Entry points */

typedef int (*cmpi_MPI_Init_thread_fn)(int *argc, char ***argv, int required, int *provided);
typedef int (*cmpi_MPI_Initialized_fn)(int *flag);
typedef int (*cmpi_MPI_Query_thread_fn)(int *provided);
typedef int (*cmpi_MPI_Finalized_fn)(int *flag);
typedef int (*cmpi_MPI_Finalize_fn)(void);
typedef int (*cmpi_MPI_Abort_fn)(cmpi_Comm comm, int errorcode);
typedef int (*cmpi_MPI_Comm_rank_fn)(cmpi_Comm comm, int *rank);
typedef int (*cmpi_MPI_Comm_size_fn)(cmpi_Comm comm, int *size);
typedef int (*cmpi_MPI_Comm_split_type_fn)(cmpi_Comm comm, int split_type, int key, cmpi_Info info, cmpi_Comm *newcomm);
typedef int (*cmpi_MPI_Comm_free_fn)(cmpi_Comm *comm);
typedef int (*cmpi_MPI_Allreduce_fn)(const void *sendbuf, void *recvbuf, int count, cmpi_Datatype datatype, cmpi_Op op,
                                     cmpi_Comm comm);
typedef int (*cmpi_MPI_Iallreduce_fn)(const void *sendbuf, void *recvbuf, int count, cmpi_Datatype datatype, cmpi_Op op,
                                      cmpi_Comm comm, cmpi_Request *request);
typedef int (*cmpi_MPI_Bcast_fn)(void *buffer, int count, cmpi_Datatype datatype, int root, cmpi_Comm comm);
typedef int (*cmpi_MPI_Barrier_fn)(cmpi_Comm comm);
typedef int (*cmpi_MPI_Ibarrier_fn)(cmpi_Comm comm, cmpi_Request *request);
typedef int (*cmpi_MPI_Test_fn)(cmpi_Request *request, int *flag, cmpi_Status *status);
typedef int (*cmpi_MPI_Wait_fn)(cmpi_Request *request, cmpi_Status *status);
typedef int (*cmpi_MPI_Error_string_fn)(int errorcode, char *string, int *resultlen);

#endif
