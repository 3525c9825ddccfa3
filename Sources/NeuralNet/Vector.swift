// Reductions over Float runs in 16 independent lanes. Swift keeps Float addition in program
// order, so a plain `sum += x[i]` loop cannot vectorise; these split the sum into lanes
// explicitly (a fixed order, so results stay deterministic).

enum Vector {
    typealias Lanes = SIMD16<Float>

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Lanes {
        UnsafeRawPointer(p).loadUnaligned(as: Lanes.self)
    }

    @inline(__always)
    static func store(_ v: Lanes, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self)
    }

    /// Σ x[i]
    @inline(__always)
    static func sum(_ x: UnsafePointer<Float>, _ count: Int) -> Float {
        var acc = Lanes(repeating: 0)
        var i = 0
        while i + 16 <= count { acc += load(x + i); i += 16 }
        var total = acc.sum()
        while i < count { total += x[i]; i += 1 }
        return total
    }

    /// Σ (x[i] - mean)²
    @inline(__always)
    static func sumOfSquaredDeviations(_ x: UnsafePointer<Float>, _ count: Int, mean: Float) -> Float {
        var acc = Lanes(repeating: 0)
        let m = Lanes(repeating: mean)
        var i = 0
        while i + 16 <= count { let d = load(x + i) - m; acc += d * d; i += 16 }
        var total = acc.sum()
        while i < count { let d = x[i] - mean; total += d * d; i += 1 }
        return total
    }

    /// Σ x[i] * y[i]
    @inline(__always)
    static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ count: Int) -> Float {
        var acc = Lanes(repeating: 0)
        var i = 0
        while i + 16 <= count { acc += load(x + i) * load(y + i); i += 16 }
        var total = acc.sum()
        while i < count { total += x[i] * y[i]; i += 1 }
        return total
    }

    /// y[i] += x[i]
    @inline(__always)
    static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, _ count: Int) {
        var i = 0
        while i + 16 <= count { store(load(y + i) + load(x + i), y + i); i += 16 }
        while i < count { y[i] += x[i]; i += 1 }
    }
}
