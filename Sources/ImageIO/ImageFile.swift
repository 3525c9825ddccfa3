#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A user's image as bytes (a file, or standard input), and the reader its first bytes choose:
/// PNG or JPEG, whatever the file is called.
public enum ImageFile {
    /// Inputs larger than this are refused before they are read; a PNG or JPEG of the largest image
    /// the readers accept is far smaller.
    public static let maximumBytes = 256 << 20

    /// Standard input's name in messages and output.
    public static let standardInputName = "<stdin>"

    /// The bytes of a regular file.
    public static func contents(of path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ImageIOError("\(path): " + (errno == ENOENT ? "no such file" : "cannot open: \(String(cString: strerror(errno)))"))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ImageIOError("\(path): cannot stat: \(String(cString: strerror(errno)))") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw ImageIOError("\(path): not a regular file") }
        guard Int(info.st_size) <= maximumBytes else { throw tooLarge(path) }
        return try readToEnd(fd, name: path)
    }

    /// Standard input to its end (`digits predict -`). A terminal is refused: nobody types an image.
    public static func standardInputContents() throws -> [UInt8] {
        guard isatty(0) == 0 else {
            throw ImageIOError("\(standardInputName): standard input is a terminal; send an image into it, e.g. digits predict - < photo.jpg")
        }
        return try readToEnd(0, name: standardInputName)
    }

    /// The image in `bytes` (named `name` in errors) as grey values, through the reader its first bytes name.
    public static func readGrey(_ bytes: [UInt8], name: String) throws -> GreyImage {
        if PNGReader.hasSignature(bytes) { return try PNGReader.readGrey(bytes, name: name) }
        if JPEGReader.hasSignature(bytes) { return try JPEGReader.readGrey(bytes, name: name) }
        guard !bytes.isEmpty else { throw ImageIOError("\(name): empty; no image in it") }
        if let other = otherFormat(bytes) {
            throw ImageIOError("\(name): not a PNG file or a JPEG file but \(other); save or convert it as JPEG or PNG")
        }
        throw ImageIOError("\(name): not a PNG file or a JPEG file (\(startDescription(bytes)))")
    }

    /// A file's image as grey values (PNG or JPEG).
    public static func readGrey(_ path: String) throws -> GreyImage {
        try readGrey(contents(of: path), name: path)
    }

    /// "it starts with 6E 6F 74 20 (\"not \")": the first bytes, for a sentence about a file of unknown kind.
    static func startDescription(_ bytes: [UInt8]) -> String {
        let head = bytes.prefix(8)
        let hex = head.map { ($0 < 16 ? "0" : "") + String($0, radix: 16, uppercase: true) }.joined(separator: " ")
        let printable = head.allSatisfy { (0x20..<0x7f).contains($0) }
        return "it starts with \(hex)" + (printable ? " (\"\(String(decoding: head, as: UTF8.self))\")" : "")
    }

    /// Image formats people have that digits does not read, by their signatures.
    static func otherFormat(_ bytes: [UInt8]) -> String? {
        func starts(_ text: String, at offset: Int = 0) -> Bool {
            let signature = Array(text.utf8)
            return bytes.count >= offset + signature.count && Array(bytes[offset..<(offset + signature.count)]) == signature
        }
        if starts("GIF8") { return "a GIF image" }
        if starts("BM") && bytes.count >= 26 { return "a BMP image" }
        if starts("RIFF") && starts("WEBP", at: 8) { return "a WebP image" }
        if starts("II*\u{0}") || starts("MM\u{0}*") { return "a TIFF image" }
        if starts("ftyp", at: 4) {
            if starts("avif", at: 8) { return "an AVIF image" }
            if ["heic", "heix", "hevc", "mif1", "msf1"].contains(where: { starts($0, at: 8) }) { return "a HEIC image (the photo format of iPhones)" }
        }
        return nil
    }

    static func tooLarge(_ name: String) -> ImageIOError {
        ImageIOError("\(name): more than \(maximumBytes >> 20) MB; too large for a picture of a digit")
    }

    /// Every byte up to end of file, refusing more than `maximumBytes`.
    static func readToEnd(_ fd: Int32, name: String) throws -> [UInt8] {
        var bytes = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw ImageIOError("\(name): read failed: \(String(cString: strerror(errno)))") }
            if n == 0 { return bytes }
            guard bytes.count + n <= maximumBytes else { throw tooLarge(name) }
            bytes += chunk[0..<n]
        }
    }
}
