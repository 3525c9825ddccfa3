#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CZlib

/// The content of a file, read front to back: as stored, or inflated when the file starts with
/// the gzip magic bytes (the name does not matter). Inflation streams through zlib in fixed
/// buffers, so memory does not grow with the file.
final class ByteStream {
    let path: String
    let isGzip: Bool
    private let fd: Int32
    private var input: UnsafeMutableRawBufferPointer
    private var stream = z_stream()
    private var inputStart = 0, inputEnd = 0
    private var fileEnded = false
    private var gzipMemberEnded = false
    private(set) var contentBytesRead = 0
    /// SHA-256 of the file's bytes as stored, kept for gzip files only (some data sets publish
    /// checksums of their .gz files and not of the content); complete once the stream has ended.
    private(set) var storedHasher = SHA256()

    private static let inputSize = 1 << 18

    init(path: String) throws {
        self.path = path
        let opened = open(path, O_RDONLY)
        if opened < 0 {
            let code = errno
            if code == ENOENT { throw DatasetError.fileNotFound(path: path) }
            throw DatasetError.unreadable(path: path, reason: String(cString: strerror(code)))
        }
        fd = opened
        var info = stat()
        if fstat(fd, &info) != 0 {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw DatasetError.unreadable(path: path, reason: reason)
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw DatasetError.unreadable(path: path, reason: "it is a directory")
        }
        input = .allocate(byteCount: ByteStream.inputSize, alignment: 16)
        // Peek at the first bytes to decide raw or gzip.
        var peek = 0
        while peek < 2 {
            let n = posixRead(fd, input.baseAddress! + peek, ByteStream.inputSize - peek)
            if n < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                input.deallocate(); close(fd)
                throw DatasetError.unreadable(path: path, reason: reason)
            }
            if n == 0 { fileEnded = true; break }
            peek += n
        }
        inputEnd = peek
        if peek == 0 {
            input.deallocate(); close(fd)
            throw DatasetError.emptyFile(path: path)
        }
        isGzip = peek >= 2 && input[0] == 0x1f && input[1] == 0x8b
        if isGzip {
            storedHasher.update(UnsafeRawBufferPointer(rebasing: input[0..<peek]))
            if czlib_inflate_init_gzip(&stream) != Z_OK {
                input.deallocate(); close(fd)
                throw DatasetError.unreadable(path: path, reason: "zlib could not start inflating")
            }
        }
    }

    deinit {
        if isGzip { inflateEnd(&stream) }
        input.deallocate()
        close(fd)
    }

    /// Fills the buffer; returns fewer bytes than asked only at the end of the content.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var filled = 0
        while filled < buffer.count {
            let n = isGzip ? try inflateSome(into: buffer, from: filled) : try rawSome(into: buffer, from: filled)
            if n == 0 { break }
            filled += n
        }
        contentBytesRead += filled
        return filled
    }

    private func refill() throws {
        inputStart = 0
        inputEnd = 0
        while !fileEnded {
            let n = posixRead(fd, input.baseAddress!, ByteStream.inputSize)
            if n < 0 {
                if errno == EINTR { continue }
                throw DatasetError.unreadable(path: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { fileEnded = true } else { inputEnd = n }
            if isGzip && n > 0 { storedHasher.update(UnsafeRawBufferPointer(rebasing: input[0..<n])) }
            return
        }
    }

    private func rawSome(into buffer: UnsafeMutableRawBufferPointer, from offset: Int) throws -> Int {
        if inputStart == inputEnd {
            // Large reads go straight to the destination.
            let wanted = buffer.count - offset
            if wanted >= ByteStream.inputSize && !fileEnded {
                while true {
                    let n = posixRead(fd, buffer.baseAddress! + offset, wanted)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw DatasetError.unreadable(path: path, reason: String(cString: strerror(errno)))
                    }
                    if n == 0 { fileEnded = true }
                    return n
                }
            }
            try refill()
            if inputStart == inputEnd { return 0 }
        }
        let n = min(buffer.count - offset, inputEnd - inputStart)
        (buffer.baseAddress! + offset).copyMemory(from: input.baseAddress! + inputStart, byteCount: n)
        inputStart += n
        return n
    }

    private func inflateSome(into buffer: UnsafeMutableRawBufferPointer, from offset: Int) throws -> Int {
        while true {
            if gzipMemberEnded {
                // A gzip file may hold several members back to back; anything else after one is an error.
                if inputStart == inputEnd { try refill() }
                if inputStart == inputEnd { return 0 }
                inflateReset(&stream)
                gzipMemberEnded = false
            }
            if inputStart == inputEnd {
                try refill()
                if inputStart == inputEnd {
                    throw DatasetError.corruptGzip(path: path, reason: "the compressed stream ends early (truncated file)")
                }
            }
            let availableIn = inputEnd - inputStart
            let availableOut = buffer.count - offset
            stream.next_in = (input.baseAddress! + inputStart).assumingMemoryBound(to: Bytef.self)
            stream.avail_in = uInt(availableIn)
            stream.next_out = (buffer.baseAddress! + offset).assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(min(availableOut, Int(UInt32.max)))
            let status = inflate(&stream, Z_NO_FLUSH)
            let consumed = availableIn - Int(stream.avail_in)
            let produced = min(availableOut, Int(UInt32.max)) - Int(stream.avail_out)
            inputStart += consumed
            switch status {
            case Z_OK, Z_BUF_ERROR:
                if produced > 0 { return produced }
                if status == Z_BUF_ERROR && consumed == 0 && inputStart < inputEnd {
                    throw DatasetError.corruptGzip(path: path, reason: "inflate made no progress")
                }
            case Z_STREAM_END:
                gzipMemberEnded = true
                if produced > 0 { return produced }
            default:
                let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                throw DatasetError.corruptGzip(path: path, reason: message)
            }
        }
    }
}

/// `read(2)`, named apart from `ByteStream.read(into:)`.
@inline(__always)
func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(fd, buffer, count)
}
