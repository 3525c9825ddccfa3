// swift-tools-version:6.0
import PackageDescription

// Release builds of numeric code: whole-module optimisation is SwiftPM's default for -c release.
let package = Package(
    name: "digits",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "digits", targets: ["digits"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C system libraries, each through pkg-config (Debian: libopenmpi-dev, zlib1g-dev, libpng-dev, libjpeg-dev).
        .systemLibrary(name: "CMPI", pkgConfig: "mpi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"]), .brew(["open-mpi"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"]), .brew(["libpng"])]),
        // libjpeg-turbo (Debian's libjpeg-dev), with the decode and encode in its shim (libjpeg's errors longjmp).
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg",
                       providers: [.apt(["libjpeg-dev"]), .brew(["jpeg-turbo"])]),

        // The arithmetic of training, one kernel table per ISA (AVX-512, AVX2, NEON, plain C), chosen
        // once at run time, and the worker pool (Sources/CKernels/include/ckernels.h).
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // Heap statistics for the allocation check in `digits bench`.
        .target(name: "CHeapStats"),
        // The SIGINT/SIGTERM handler of `digits train` (a stop request saves a checkpoint).
        .target(name: "CStopSignals"),
        // Counter-based random numbers shared by data sharding, augmentation and initialisation.
        .target(name: "CounterRNG"),
        .target(name: "Datasets", dependencies: ["CZlib", "CounterRNG"]),
        .target(name: "NeuralNet", dependencies: ["CKernels", "CounterRNG"]),
        .target(name: "Augmentation", dependencies: ["CounterRNG"]),
        .target(name: "ImageIO", dependencies: ["CZlib", "CPNG", "CJPEG"]),
        .target(name: "Collective", dependencies: ["CMPI"]),
        .target(name: "Training", dependencies: ["NeuralNet", "Datasets", "Collective", "Augmentation", "CounterRNG", "CKernels"]),

        .executableTarget(name: "digits", dependencies: [
            "Datasets", "NeuralNet", "Training", "Collective", "Augmentation", "ImageIO", "CHeapStats", "CKernels", "CStopSignals",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Run by scripts/test.sh under `mpirun -np 3`: proves CMPI links and reduces.
        .executableTarget(name: "mpi-smoke", dependencies: ["CMPI"]),

        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "CZlib", "CounterRNG"]),
        .testTarget(name: "NeuralNetTests", dependencies: ["NeuralNet", "CounterRNG"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "NeuralNet", "Datasets", "Collective", "Augmentation", "CKernels"]),
        .testTarget(name: "CollectiveTests", dependencies: ["Collective"]),
        .testTarget(name: "AugmentationTests", dependencies: ["Augmentation", "ImageIO", "CZlib"]),
        .testTarget(name: "ImageIOTests", dependencies: ["ImageIO", "Training", "Datasets"]),
    ]
)
