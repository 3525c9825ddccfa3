import CounterRNG

/// The ranges of the appearance variations (`--augment thickness=p,blur=p,lowres=p,contrast=p,noise=p`).
/// Lengths are pixels of a 28-pixel field and scale with another image size.
public enum AppearanceRanges {
    /// A thickened or thinned stroke: the 3x3 dilation or erosion blended in at this strength.
    public static let thicknessStrength: ClosedRange<Float> = 0.5...1
    /// Gaussian blur width, pixels.
    public static let blurSigma: ClosedRange<Float> = 0.5...1.5
    /// The side of the low-resolution capture, pixels.
    public static let lowResolutionSide: ClosedRange<Float> = 8...18
    /// Ink contrast: full ink lands this fraction of the way from the paper to white.
    public static let inkContrast: ClosedRange<Float> = 0.25...1
    /// Grey paper (with even odds; otherwise black), grey level.
    public static let paperLevel: ClosedRange<Float> = 0...110
    /// Gaussian noise, grey levels.
    public static let noiseSigma: ClosedRange<Float> = 5...45
}

extension Augmenter {

    /// Varies one warped sample's appearance in place (values 0...255): strokes thickened or thinned,
    /// blur, a low-resolution capture, contrast (faint ink, grey paper), noise, in that order (the pen,
    /// then the optics, the sensor's pixels, the lighting, the sensor's noise). Each happens with its
    /// probability from the settings. Every draw comes from one stream keyed by (seed, epoch,
    /// sampleID) and the same draws are made whichever variations are on, so a sample's variation is
    /// the same on any rank and for any world size. `scratch` needs 2·width·height floats.
    func varyAppearance(_ image: UnsafeMutablePointer<Float>, epoch: Int, sampleID: Int, scratch: UnsafeMutablePointer<Float>) {
        let s = settings, n = width * height
        let result = scratch, temp = scratch + n
        let unit = Float(min(width, height)) / 28
        var random = KeyedRandom(seed: seed, purpose: .photometric, UInt64(epoch), UInt64(sampleID))
        @inline(__always) func draw(_ range: ClosedRange<Float>) -> Float { random.nextUniform(range.lowerBound, range.upperBound) }
        // The draws, in a fixed order and number.
        let thicken = random.nextUnitFloat() < s.thickness, dilates = random.nextUnitFloat() < 0.5
        let strength = draw(AppearanceRanges.thicknessStrength)
        let blurs = random.nextUnitFloat() < s.blur, sigma = draw(AppearanceRanges.blurSigma) * unit
        let lowers = random.nextUnitFloat() < s.lowResolution, side = draw(AppearanceRanges.lowResolutionSide)
        let contrasts = random.nextUnitFloat() < s.contrast, greyPaper = random.nextUnitFloat() < 0.5
        let inkContrast = draw(AppearanceRanges.inkContrast), paperDraw = draw(AppearanceRanges.paperLevel)
        let noisy = random.nextUnitFloat() < s.noise, noiseSigma = draw(AppearanceRanges.noiseSigma)

        if thicken {
            if dilates {
                ImageFilter.dilate(image, width: width, height: height, into: result, temp: temp)
            } else {
                ImageFilter.erode(image, width: width, height: height, into: result, temp: temp)
            }
            for i in 0..<n { image[i] += strength * (result[i] - image[i]) }
        }
        if blurs {
            ImageFilter.blur(image, width: width, height: height, sigma: sigma, into: result, temp: temp)
            image.update(from: result, count: n)
        }
        if lowers {
            let fraction = min(1, side / 28)
            ImageFilter.lowResolution(image, width: width, height: height,
                                      smallWidth: Int((Float(width) * fraction).rounded()), smallHeight: Int((Float(height) * fraction).rounded()),
                                      into: result, temp: temp)
            image.update(from: result, count: n)
        }
        if contrasts {
            let paper = greyPaper ? paperDraw : 0
            ImageFilter.remapContrast(image, count: n, paper: paper, ink: paper + inkContrast * (255 - paper))
        }
        if noisy {
            // The pixel noise continues the same stream, after the fixed draws above.
            ImageFilter.addNoise(image, count: n, sigma: noiseSigma, random: &random)
        }
    }
}
