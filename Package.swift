// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "swift-bitnet",
    products: [
        .library(name: "BitNetQuantization", targets: ["BitNetQuantization"]),
        .library(name: "BitNetFormats", targets: ["BitNetFormats"]),
        .library(name: "BitNetInference", targets: ["BitNetInference"]),
        .library(name: "BitNetCalibration", targets: ["BitNetCalibration"]),
        .executable(name: "bitnet", targets: ["bitnet"]),
    ],
    dependencies: [
        // Used by the command-line tool only; the library products depend on nothing but the toolchain.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Ternary and int8 math, every packing (TQ1_0, TQ2_0, I2_S, Q8_0, Hugging Face uint8), and the
        // scalar BitLinear oracle that fast kernels are tested against.
        .target(name: "BitNetQuantization"),
        // GGUF and safetensors readers and writers, Hugging Face config decoding, model inspection.
        .target(name: "BitNetFormats", dependencies: ["BitNetQuantization"]),
        // Hot loops in C: int8 × packed ternary dot products, AVX2 and scalar variants chosen at run time.
        .target(name: "CBitNetKernels"),
        // The engine: model loading, the forward pass with a KV cache, tokenizers, sampling, generation.
        .target(name: "BitNetInference", dependencies: ["BitNetFormats", "BitNetQuantization", "CBitNetKernels"]),
        // Conversion of checkpoints to GGUF and the calibration report; the CLI only parses options.
        .target(name: "BitNetCalibration", dependencies: ["BitNetInference", "BitNetFormats", "BitNetQuantization"]),
        .executableTarget(
            name: "bitnet",
            dependencies: [
                "BitNetFormats",
                "BitNetInference",
                "BitNetCalibration",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // The default model: tiny-bitnet (Models/tiny-bitnet), used when no -m is given.
            resources: [.copy("Resources/tiny-bitnet.gguf")]
        ),
        .executableTarget(
            name: "QuantizationBenchmark",
            dependencies: ["BitNetQuantization", "BitNetFormats"],
            path: "Benchmarks/QuantizationBenchmark"
        ),
        .executableTarget(
            name: "InferenceBenchmark",
            dependencies: ["BitNetInference", "BitNetFormats", "BitNetQuantization"],
            path: "Benchmarks/InferenceBenchmark"
        ),
        .executableTarget(
            name: "GenerateText",
            dependencies: ["BitNetInference"],
            path: "Examples/GenerateText"
        ),
        .executableTarget(
            name: "InspectModel",
            dependencies: ["BitNetFormats"],
            path: "Examples/InspectModel"
        ),
        // Fixture access and small helpers shared by the test targets.
        .target(
            name: "TestSupport",
            dependencies: ["BitNetFormats"],
            path: "Tests/TestSupport"
        ),
        .testTarget(
            name: "BitNetQuantizationTests",
            dependencies: ["BitNetQuantization", "BitNetFormats", "TestSupport"]
        ),
        .testTarget(
            name: "BitNetFormatsTests",
            dependencies: ["BitNetFormats", "BitNetQuantization", "TestSupport"]
        ),
        .testTarget(
            name: "BitNetCalibrationTests",
            dependencies: ["BitNetCalibration", "BitNetInference", "BitNetFormats", "BitNetQuantization", "TestSupport"]
        ),
        .testTarget(
            name: "BitNetInferenceTests",
            dependencies: ["BitNetInference", "BitNetFormats", "BitNetQuantization", "CBitNetKernels", "TestSupport"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
