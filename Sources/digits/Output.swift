import ImageIO
import Training
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// write(2), named apart from the `write` methods below (Glibc on Linux, Darwin on macOS).
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int { write(fd, buffer, count) }

let digitsVersion = "0.1.0"

func printError(_ message: String) {
    let line = message + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

/// Pads `text` on the left (numbers) or right (words) to `width` characters.
func pad(_ text: String, _ width: Int, right: Bool = true) -> String {
    let gap = max(0, width - text.count)
    return right ? String(repeating: " ", count: gap) + text : text + String(repeating: " ", count: gap)
}

func fixed(_ value: Double, _ decimals: Int) -> String {
    var buffer = [UInt8](repeating: 0, count: 64)
    let length = buffer.withUnsafeMutableBufferPointer { p in
        p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: 64) { chars in
            withVaList([value]) { vsnprintf(chars, 64, "%.\(decimals)f", $0) }
        }
    }
    return String(decoding: buffer[0..<Int(min(max(length, 0), 63))], as: UTF8.self)
}

/// Appends lines to a file, creating it; each line is written whole with one write(2).
final class LineWriter {
    let path: String
    private let fd: Int32

    init(path: String, append: Bool = false) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0o644)
        if fd < 0 { throw CommandError("\(path): cannot open for writing: \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    func write(_ line: String) throws {
        let text = line + "\n"
        let written = text.withCString { systemWrite(fd, $0, strlen($0)) }
        if written != text.utf8.count { throw CommandError("\(path): write failed: \(String(cString: strerror(errno)))") }
    }
}

/// A user-facing failure with its sentence.
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// True when stdout is a terminal (progress bars); plain lines otherwise.
var standardOutputIsTerminal: Bool { isatty(1) == 1 }

/// Redraws one line in place on a terminal.
func drawProgress(_ text: String) {
    let line = "\r" + text + "\u{1B}[K"
    _ = line.withCString { systemWrite(1, $0, strlen($0)) }
}

func clearProgress() {
    let line = "\r\u{1B}[K"
    _ = line.withCString { systemWrite(1, $0, strlen($0)) }
}

/// Standard output, one write(2) per call: lines appear at once in a log file or through mpirun
/// (the C library would block-buffer them when stdout is not a terminal).
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    let text = items.map { "\($0)" }.joined(separator: separator) + terminator
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { systemWrite(1, $0.baseAddress! + offset, $0.count - offset) }
        if n <= 0 { break }
        offset += n
    }
}

/// Writes a whole output file (a picture, a report) so that a reader sees the old file or the whole
/// new one; without the fsyncs of a checkpoint.
func writeOutputFile(_ bytes: [UInt8], to path: String) throws {
    try bytes.withUnsafeBytes { try writeAtomically($0, to: path, durable: false) }
}

extension Image8 {
    /// Writes the image as a PNG file (`writeOutputFile`).
    func writePNG(to path: String) throws {
        try writeOutputFile(try pngData(), to: path)
    }
}
