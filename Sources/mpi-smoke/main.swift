// Proves the CMPI module: every rank reports its rank and the world size, and an
// in-place allreduce of (rank + 1) must equal n(n+1)/2 on every rank.
import CMPI
#if canImport(Glibc)
import Glibc
#endif

func check(_ code: Int32, _ what: String) {
    if code != cmpi_success() {
        let line = "mpi-smoke: \(what) failed with MPI error \(code)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        exit(2)
    }
}

check(MPI_Init(nil, nil), "MPI_Init")
check(MPI_Comm_set_errhandler(cmpi_comm_world(), cmpi_errors_return()), "MPI_Comm_set_errhandler")
var rank: Int32 = 0, size: Int32 = 0
check(MPI_Comm_rank(cmpi_comm_world(), &rank), "MPI_Comm_rank")
check(MPI_Comm_size(cmpi_comm_world(), &size), "MPI_Comm_size")

var value = [Double(rank + 1), 1.0]   // sum of ranks+1, and the number of ranks
check(MPI_Allreduce(cmpi_in_place(), &value, 2, cmpi_double(), cmpi_sum(), cmpi_comm_world()), "MPI_Allreduce")
var maxRank = [Int32(rank)]
check(MPI_Allreduce(cmpi_in_place(), &maxRank, 1, cmpi_int(), cmpi_max(), cmpi_comm_world()), "MPI_Allreduce(max)")

let expected = Double(size) * Double(size + 1) / 2
let ok = value[0] == expected && value[1] == Double(size) && maxRank[0] == size - 1
print("mpi-smoke rank \(rank) of \(size): allreduce sum \(Int(value[0])) (expected \(Int(expected))), ranks \(Int(value[1])), max rank \(maxRank[0]) \(ok ? "ok" : "WRONG")")
check(MPI_Finalize(), "MPI_Finalize")
exit(ok ? 0 : 1)
