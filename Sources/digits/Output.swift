#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

/// Seconds on a monotonic clock.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
