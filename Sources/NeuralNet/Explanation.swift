/// Why a network gave its answer for one image: Grad-CAM (Selvaraju et al. 2017) at the last
/// convolutional block's output (HiResCAM where Grad-CAM's map is 0 everywhere), or, for a network
/// without convolutions, the input gradient's size (saliency, Simonyan et al. 2014).
///
/// Both need the gradient of one class's logit with respect to an activation inside the network.
/// `Network.gradient(ofClass:image:atBoundary:)` runs one image forward in evaluation mode and
/// backward from the one-hot gradient at the logits down to a chosen boundary between layers.
/// Boundaries number the activations between the layers that run (after fusion): boundary 0 is the
/// input, boundary b the output of `layers[b - 1]`, boundary `layers.count` the logits. A fused
/// layer (BatchNorm+ReLU+pooling) has no boundary inside it.
///
/// Nothing here is on the training path: the layers' own forward and backward run unchanged, on a
/// batch of one, and the store's gradient arena is put back as it was afterwards.

/// One class's logit and its gradient at a boundary, for one image.
public struct BoundaryGradient: Sendable {
    public let boundary: Int
    /// The activation's shape there, (C, H, W).
    public let shape: Shape
    /// The class whose logit was differentiated.
    public let classIndex: Int
    /// (classes) the image's logits, evaluation mode.
    public let logits: [Float]
    /// (C, H, W) the activation at the boundary.
    public let activation: [Float]
    /// (C, H, W) d logits[classIndex] / d activation.
    public let gradient: [Float]
}

/// A heat map over the input image and how it was made.
public struct Explanation: Sendable {
    public enum Method: Equatable, Sendable {
        /// Grad-CAM at this boundary (the last convolutional block's output).
        case gradCAM(boundary: Int)
        /// Grad-CAM's map was 0 everywhere (no position where the channels it weights raise the
        /// logit), so the map is HiResCAM's at the same boundary (Draelos & Carin 2020): the gradient
        /// times the activation position by position, summed over channels, ReLU. Behind a flatten and
        /// a dense layer this is each position's share of the logit, which Grad-CAM's spatial mean of
        /// the gradient averages away.
        case positionwiseGradCAM(boundary: Int)
        /// |d logit / d input|, largest over the input's channels: the network has no convolution
        /// (or its last one ends in a single position, where Grad-CAM has nothing to place).
        case inputGradient
    }

    public let method: Method
    /// The class explained: the predicted one unless another was asked for.
    public let classIndex: Int
    /// (classes) the image's logits, evaluation mode.
    public let logits: [Float]
    /// (H, W) of the input, 0...1 (all 0 when the map is flat: nothing speaks for the class).
    public let heat: [Float]
    public let height: Int
    public let width: Int

    /// No position raised the class's logit by either map: the heat map is all 0.
    public var isFlat: Bool { heat.allSatisfy { $0 == 0 } }
}

extension Network {
    /// The activation's shape at a boundary (0: the input).
    public func shape(atBoundary boundary: Int) -> Shape {
        boundary == 0 ? spec.input : layers[boundary - 1].outputShape
    }

    /// The boundary Grad-CAM reads: the output of the last convolutional block, the last activation
    /// after the last convolution that is still an image, after whatever BatchNorm, ReLU, pooling
    /// (or evaluation-mode dropout) follows it before `flatten` or `gap`. nil when the network has no
    /// convolution, or that activation is a single position.
    public var gradCAMBoundary: Int? {
        guard let lastConvolution = layers.lastIndex(where: { $0 is Conv2D }) else { return nil }
        var boundary = lastConvolution + 1
        while boundary < layers.count && !layers[boundary].outputShape.isVector { boundary += 1 }
        return shape(atBoundary: boundary).isVector ? nil : boundary
    }

    /// The spec's layer a boundary is the output of: its index and token (`pool2`); nil for the input.
    public func specLayer(atBoundary boundary: Int) -> (index: Int, token: String)? {
        guard boundary > 0, let last = specLayerRanges[boundary - 1].last else { return nil }
        return (last, spec.layers[last].token)
    }

    /// One image (C, H, W), normalised as in training, forward in evaluation mode, then backward from
    /// the one-hot gradient of logit `classIndex` (the predicted class when nil) down to `boundary`
    /// (0: the input). The store's gradients are as they were before.
    public func gradient(ofClass classIndex: Int? = nil, image: UnsafePointer<Float>, atBoundary boundary: Int) -> BoundaryGradient {
        precondition((0...layers.count).contains(boundary), "boundary \(boundary) of a network of \(layers.count) layers")
        precondition(classIndex.map { (0..<classes).contains($0) } ?? true, "class \(classIndex ?? -1) of \(classes)")
        let context = PassContext(mode: .evaluation)
        let shape = shape(atBoundary: boundary)
        // The layers keep pointers to their inputs until backward: these buffers outlive both passes.
        let input = FloatBuffer(capacity: spec.input.count)   // (1, C, H, W)
        let dLogits = FloatBuffer(capacity: classes)           // (1, classes)
        input.pointer.update(from: image, count: spec.input.count)
        var activation = [Float]()
        if boundary == 0 { activation = Array(UnsafeBufferPointer(start: input.pointer, count: shape.count)) }
        var x = input.pointer
        for (index, layer) in layers.enumerated() {
            x = layer.forward(x, batch: 1, context: context)
            // Copied at once: a later layer (a ReLU, BatchNorm) may write over it in place.
            if index + 1 == boundary { activation = Array(UnsafeBufferPointer(start: x, count: shape.count)) }
        }
        let logits = Array(UnsafeBufferPointer(start: x, count: classes))
        var explained = 0
        for k in 1..<max(1, classes) where logits[k] > logits[explained] { explained = k }
        explained = classIndex ?? explained

        let savedGradients = Array(store.gradientBuffer)
        defer { _ = store.gradientBuffer.update(fromContentsOf: savedGradients) }
        dLogits.zero(classes)
        dLogits.pointer[explained] = 1
        var g = dLogits.pointer
        var gradient = boundary == layers.count ? [Float](UnsafeBufferPointer(start: g, count: classes)) : []
        // Backward walks the layers in reverse, from the logits down to the boundary.
        for index in stride(from: layers.count - 1, through: boundary, by: -1) {
            guard let below = layers[index].backward(g, batch: 1, needsInputGradient: true) else {
                preconditionFailure("\(layers[index].name) returned no input gradient")
            }
            g = below
        }
        if boundary < layers.count { gradient = Array(UnsafeBufferPointer(start: g, count: shape.count)) }
        return withExtendedLifetime((input, dLogits)) {
            BoundaryGradient(boundary: boundary, shape: shape, classIndex: explained, logits: logits,
                             activation: activation, gradient: gradient)
        }
    }

    /// The logits of one activation at `boundary`, run through the layers above it in evaluation
    /// mode: what the network would say had it seen this activation there (finite differences, occlusion).
    public func logits(fromBoundary boundary: Int, activation: [Float]) -> [Float] {
        precondition((0...layers.count).contains(boundary) && activation.count == shape(atBoundary: boundary).count)
        let buffer = FloatBuffer(capacity: activation.count)
        activation.withUnsafeBufferPointer { buffer.pointer.update(from: $0.baseAddress!, count: $0.count) }
        var x = buffer.pointer
        for layer in layers[boundary...] { x = layer.forward(x, batch: 1, context: PassContext(mode: .evaluation)) }
        return withExtendedLifetime(buffer) { Array(UnsafeBufferPointer(start: x, count: classes)) }
    }

    /// Grad-CAM for a network with a convolution (HiResCAM when Grad-CAM's map is 0 everywhere),
    /// input-gradient saliency otherwise, of one image
    /// (C, H, W) normalised as in training; for `classIndex`, or the predicted class when nil.
    public func explain(_ image: UnsafePointer<Float>, classIndex: Int? = nil) -> Explanation {
        let h = spec.input.height, w = spec.input.width
        if let boundary = gradCAMBoundary {
            let pass = gradient(ofClass: classIndex, image: image, atBoundary: boundary)
            var map = GradCAM.map(activation: pass.activation, gradient: pass.gradient, shape: pass.shape)
            var method = Explanation.Method.gradCAM(boundary: boundary)
            if map.allSatisfy({ $0 == 0 }) {
                map = GradCAM.positionwiseMap(activation: pass.activation, gradient: pass.gradient, shape: pass.shape)
                method = .positionwiseGradCAM(boundary: boundary)
            }
            let heat = HeatMap.normalized(HeatMap.upsampled(map, height: pass.shape.height, width: pass.shape.width,
                                                            toHeight: h, toWidth: w))
            return Explanation(method: method, classIndex: pass.classIndex, logits: pass.logits, heat: heat, height: h, width: w)
        }
        let pass = gradient(ofClass: classIndex, image: image, atBoundary: 0)
        let heat = HeatMap.normalized(Saliency.map(inputGradient: pass.gradient, shape: spec.input))
        return Explanation(method: .inputGradient, classIndex: pass.classIndex, logits: pass.logits, heat: heat, height: h, width: w)
    }
}

/// Grad-CAM's arithmetic on one activation A (C, H, W) and the gradient G of a class's logit there.
public enum GradCAM {
    /// (C) w_c = the spatial mean of G_c: how much channel c, as a whole, raises the logit.
    public static func channelWeights(gradient: [Float], shape: Shape) -> [Float] {
        let pixels = shape.height * shape.width
        return (0..<shape.channels).map { c in
            var sum: Double = 0
            for p in 0..<pixels { sum += Double(gradient[c * pixels + p]) }
            return Float(sum / Double(pixels))
        }
    }

    /// (H, W) ReLU(sum_c w_c A_c): where the channels that raise the logit are active.
    public static func map(activation: [Float], gradient: [Float], shape: Shape) -> [Float] {
        let pixels = shape.height * shape.width
        let weights = channelWeights(gradient: gradient, shape: shape)
        return (0..<pixels).map { p in
            var sum: Double = 0
            for c in 0..<shape.channels { sum += Double(weights[c]) * Double(activation[c * pixels + p]) }
            return Float(max(0, sum))
        }
    }
}

extension GradCAM {
    /// (H, W) ReLU(sum_c G_c ⊙ A_c): HiResCAM, the gradient's own value at each position instead of
    /// its channel mean (the fallback when Grad-CAM's map is 0 everywhere).
    public static func positionwiseMap(activation: [Float], gradient: [Float], shape: Shape) -> [Float] {
        let pixels = shape.height * shape.width
        return (0..<pixels).map { p in
            var sum: Double = 0
            for c in 0..<shape.channels { sum += Double(gradient[c * pixels + p]) * Double(activation[c * pixels + p]) }
            return Float(max(0, sum))
        }
    }
}

/// Input-gradient saliency: how much each input pixel moves the class's logit.
public enum Saliency {
    /// (H, W) |d logit / d x|, the largest over the input's channels.
    public static func map(inputGradient: [Float], shape: Shape) -> [Float] {
        let pixels = shape.height * shape.width
        return (0..<pixels).map { p in
            (0..<shape.channels).reduce(Float(0)) { max($0, abs(inputGradient[$1 * pixels + p])) }
        }
    }
}

/// Heat maps as plain (H, W) arrays, row-major.
public enum HeatMap {
    /// Bilinear resampling with pixel centres aligned (a pixel's centre at (i + 0.5) in either grid,
    /// edges clamped): PyTorch's `interpolate(mode: bilinear, align_corners: False)` and OpenCV's resize.
    public static func upsampled(_ map: [Float], height: Int, width: Int, toHeight: Int, toWidth: Int) -> [Float] {
        precondition(map.count == height * width && height > 0 && width > 0)
        func sourceIndex(_ target: Int, _ from: Int, _ to: Int) -> (Int, Int, Float) {
            let s = max(0, (Float(target) + 0.5) * Float(from) / Float(to) - 0.5)
            let i0 = min(Int(s), from - 1), i1 = min(i0 + 1, from - 1)
            return (i0, i1, s - Float(i0))
        }
        var out = [Float](repeating: 0, count: toHeight * toWidth)
        for y in 0..<toHeight {
            let (y0, y1, fy) = sourceIndex(y, height, toHeight)
            for x in 0..<toWidth {
                let (x0, x1, fx) = sourceIndex(x, width, toWidth)
                let top = map[y0 * width + x0] * (1 - fx) + map[y0 * width + x1] * fx
                let bottom = map[y1 * width + x0] * (1 - fx) + map[y1 * width + x1] * fx
                out[y * toWidth + x] = top * (1 - fy) + bottom * fy
            }
        }
        return out
    }

    /// (v - min) / (max - min), in 0...1; all 0 when the map is flat or not finite.
    public static func normalized(_ map: [Float]) -> [Float] {
        guard map.allSatisfy(\.isFinite), let lo = map.min(), let hi = map.max(), hi > lo else {
            return [Float](repeating: 0, count: map.count)
        }
        return map.map { ($0 - lo) / (hi - lo) }
    }
}
