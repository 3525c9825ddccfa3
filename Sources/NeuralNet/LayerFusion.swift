/// Which of the fusions below a network is built with (all of them, unless a test compares a
/// fused network with the separate layers).
public struct LayerFusions: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// A ReLU's work moves into a neighbour: the BatchNorm before it clamps in its normalising
    /// pass, the max pooling after it masks the gradient (and a 2x2 one applies the ReLU to each
    /// window's maximum). The same bits as the separate layers.
    public static let relu = LayerFusions(rawValue: 1 << 0)
    /// conv → BatchNorm → ReLU → 2x2 max pooling in one pass over the convolution's output
    /// (`ck_bn_relu_maxpool2x2`). The same forward bits; gradients equal up to the order of two
    /// per-channel sums. Only together with `relu`.
    public static let batchNormReLUMaxPool = LayerFusions(rawValue: 1 << 1)
    public static let all: LayerFusions = [.relu, .batchNormReLUMaxPool]
}

/// A run of consecutive layers of a spec that the network builds as one layer.
struct LayerGroup: Equatable {
    enum Kind: Equatable {
        case single
        case batchNormReLU
        case reluMaxPool
        case batchNormReLUMaxPool(onePass: Bool)
    }
    let kind: Kind
    /// The spec's layer indices, in order.
    let layers: Range<Int>
}

/// The one place that looks at a layer's neighbours: the spec's layer list rewritten into the
/// layers that are built. Layers themselves know only their own input and output.
enum LayerFusion {
    typealias LayerSpec = ModelSpec.LayerSpec

    /// Left to right, the longest group that starts at each layer.
    static func groups(_ layers: [LayerSpec], fusions: LayerFusions = .all) -> [LayerGroup] {
        var groups = [LayerGroup]()
        var index = 0
        while index < layers.count {
            let kind = fusions.contains(.relu) ? group(at: index, in: layers, fusions: fusions) : .single
            let count: Int
            switch kind {
            case .single: count = 1
            case .batchNormReLU, .reluMaxPool: count = 2
            case .batchNormReLUMaxPool: count = 3
            }
            groups.append(LayerGroup(kind: kind, layers: index..<(index + count)))
            index += count
        }
        return groups
    }

    private static func group(at index: Int, in layers: [LayerSpec], fusions: LayerFusions) -> LayerGroup.Kind {
        func layer(_ offset: Int) -> LayerSpec? { index + offset < layers.count ? layers[index + offset] : nil }
        switch (layer(0), layer(1), layer(2)) {
        case (.batchNorm?, .relu?, .maxPool(let k, let s)?):
            // One pass reads the convolution's output and writes its input gradient over it.
            let onePass = fusions.contains(.batchNormReLUMaxPool) && k == 2 && s == 2 && batchNormWritesOverInput(at: index, in: layers)
            return .batchNormReLUMaxPool(onePass: onePass)
        case (.batchNorm?, .relu?, _): return .batchNormReLU
        case (.relu?, .maxPool?, _): return .reluMaxPool
        default: return .single
        }
    }

    /// A BatchNorm writes over its input when the layer before is a convolution or dense layer,
    /// which do not read their output again (a ReLU does, for its mask; the network's input is the caller's).
    static func batchNormWritesOverInput(at index: Int, in layers: [LayerSpec]) -> Bool {
        guard index > 0 else { return false }
        switch layers[index - 1] {
        case .conv, .dense: return true
        default: return false
        }
    }
}
