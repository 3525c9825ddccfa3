import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes `bytes` to `path` so that a reader, or a crash at any moment, sees the old file or the
/// whole new one: `writeAtomically` with both fsyncs. Checkpoints, `latest` and --parameters-out.
public func writeDurably(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
    try writeAtomically(bytes, to: path, durable: true)
}

/// Writes `bytes` to `path` so that a reader sees the old file or the whole new one: a temporary
/// file in the same directory (`.tmp-PID-NAME`), written and renamed into place. `durable` also
/// holds across a crash of the machine: the file is fsynced before the rename and the directory
/// after it (some milliseconds a file, which images and reports do without). The one place a
/// whole file is replaced; failures name the file and the reason.
public func writeAtomically(_ bytes: UnsafeRawBufferPointer, to path: String, durable: Bool) throws {
    let directory = (path as NSString).deletingLastPathComponent
    let folder = directory.isEmpty ? "." : directory
    let temporary = folder + "/.tmp-\(getpid())-" + (path as NSString).lastPathComponent
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw CheckpointError(temporary, "cannot create: \(String(cString: strerror(errno)))") }
    var offset = 0
    while offset < bytes.count {
        let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 {
            let reason = String(cString: strerror(errno))
            close(fd); unlink(temporary)
            throw CheckpointError(temporary, "write failed: \(reason)")
        }
        offset += n
    }
    if durable && fsync(fd) != 0 {
        let reason = String(cString: strerror(errno))
        close(fd); unlink(temporary)
        throw CheckpointError(temporary, "fsync failed: \(reason)")
    }
    close(fd)
    if rename(temporary, path) != 0 {
        let reason = String(cString: strerror(errno))
        unlink(temporary)
        throw CheckpointError(path, "cannot rename into place: \(reason)")
    }
    guard durable else { return }
    let dirfd = open(folder, O_RDONLY | O_CLOEXEC)
    if dirfd >= 0 { fsync(dirfd); close(dirfd) }
}
