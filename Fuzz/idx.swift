// Fuzz target: an IDX file, raw or gzip (Datasets' readIDX through ByteStream and zlib), read
// as a labels file and as an images file; when it parses, also loaded by Dataset.load beside a
// well-formed partner file with the count its header claims (label range, count and size
// checks, sharding).
@testable import Datasets
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let scratch = getenv("FUZZ_SCRATCH").map { String(cString: $0) } ?? "/tmp"
let inputPath = scratch + "/idx-input-\(getpid())"
let partnerPath = scratch + "/idx-partner-\(getpid())"

func write(_ bytes: UnsafeRawBufferPointer, to path: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    require(fd >= 0, "cannot create \(path)")
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        require(n > 0, "cannot write \(path)")
        done += n
    }
    close(fd)
}

/// `precondition` whose message survives an optimised build.
func require(_ condition: Bool, _ message: @autoclosure () -> String = "") { if !condition { fatalError(message()) } }

/// A raw IDX file: magic, big-endian dimensions, then `fill` for every data byte.
func idxFile(magic: UInt32, dimensions: [Int], fill: (Int) -> UInt8) -> [UInt8] {
    var bytes = [UInt8]()
    for word in [Int(magic)] + dimensions { bytes += [24, 16, 8, 0].map { UInt8((word >> $0) & 0xff) } }
    bytes += (0..<dimensions.reduce(1, *)).map(fill)
    return bytes
}

/// Reads the file as `kind`, checking what the reader promises: chunks of whole records in
/// order, exactly as many bytes as the dimensions say.
func read(_ kind: IDXKind) -> [Int]? {
    var header: [Int]?
    var next = 0
    guard let result = try? readIDX(path: inputPath, kind: kind, onHeader: { dimensions in
        require(dimensions.count == (kind == .labels ? 1 : 3) && dimensions.allSatisfy { $0 > 0 })
        header = dimensions
    }, onRecords: { first, records in
        let recordBytes = header!.dropFirst().reduce(1, *)
        require(first == next && records.count % recordBytes == 0 && records.count > 0, "records out of order")
        next += records.count / recordBytes
    }) else { return nil }
    require(result.dimensions == header! && next == header![0], "readIDX returned without all the records")
    return result.dimensions
}

/// Partners are only built for small counts, so a fuzz run stays fast.
let partnerLimit = 1_000

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    write(UnsafeRawBufferPointer(start: data, count: size), to: inputPath)
    if let labels = read(.labels), labels[0] <= partnerLimit {
        let images = idxFile(magic: 0x0000_0803, dimensions: [labels[0], 28, 28]) { UInt8($0 & 0xff) }
        images.withUnsafeBytes { write($0, to: partnerPath) }
        let shard = labels[0] >= 2 ? ShardSpec(rank: 1, worldSize: 2, seed: 7) : nil
        if let dataset = try? Dataset.load(imagesPath: partnerPath, labelsPath: inputPath, shard: shard) {
            require(dataset.labels.allSatisfy { $0 < 10 } && dataset.images.count == dataset.count * 784)
        }
    }
    if let images = read(.images), images[0] <= partnerLimit {
        let labels = idxFile(magic: 0x0000_0801, dimensions: [images[0]]) { UInt8($0 % 10) }
        labels.withUnsafeBytes { write($0, to: partnerPath) }
        // imageSize nil as well as 28x28: the size check must not be what keeps the reader safe.
        for size: (height: Int, width: Int)? in [(28, 28), nil] where size != nil || images[1] * images[2] <= 1 << 12 {
            if let dataset = try? Dataset.load(imagesPath: inputPath, labelsPath: partnerPath, imageSize: size) {
                require(dataset.images.count == dataset.count * dataset.height * dataset.width)
            }
        }
    }
    return 0
}
