// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "swift-bitnet",
    platforms: [.macOS(.v14), .iOS(.v17)],
    products: [
        .library(name: "BitNetQuantization", targets: ["BitNetQuantization"]),
        .library(name: "BitNetFormats", targets: ["BitNetFormats"]),
        .library(name: "BitNetModels", targets: ["BitNetModels"]),
        .library(name: "BitNetEngine", targets: ["BitNetEngine"]),
        .library(name: "BitNetCPU", targets: ["BitNetCPU"]),
        .library(name: "BitNetInference", targets: ["BitNetInference"]),
        .library(name: "BitNetConversion", targets: ["BitNetConversion"]),
        .library(name: "BitNetServer", targets: ["BitNetServer"]),
        .library(name: "BitNetVulkan", targets: ["BitNetVulkan"]),
        .executable(name: "bitnet", targets: ["bitnet"]),
    ],
    dependencies: [
        // Used by the command-line tool only; the library products depend on nothing but the toolchain.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Used by the server target only: HTTP, and start-up and graceful shutdown.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
    ],
    targets: [
        // Ternary and int8 math, every packing (TQ1_0, TQ2_0, I2_S, Q8_0, Hugging Face uint8), and the
        // scalar BitLinear oracle that fast kernels are tested against.
        .target(name: "BitNetQuantization"),
        // GGUF and safetensors readers and writers, Hugging Face config decoding, model inspection.
        .target(name: "BitNetFormats", dependencies: ["BitNetQuantization"]),
        // What a model file describes: architectures (one file each, plus a registry), hyperparameters,
        // tensor names, the one weight source used by loading and conversion, the forward pass as a graph
        // of ops, and tokenizers. Knows nothing of where the ops run.
        .target(name: "BitNetModels", dependencies: ["BitNetFormats", "BitNetQuantization"]),
        // The backend seam: the protocol a backend implements, batches of several sequences, the KV cache.
        .target(name: "BitNetEngine", dependencies: ["BitNetModels"]),
        // Hot loops in C: int8 × packed ternary dot products; scalar, AVX2 and AVX-512 VNNI variants chosen at run time.
        .target(name: "CBitNetKernels"),
        // The CPU backend: executes the graph's ops with the C kernels.
        .target(name: "BitNetCPU", dependencies: ["BitNetEngine", "BitNetModels", "BitNetQuantization", "CBitNetKernels"]),
        // The Vulkan loader opened at run time (dlopen), so everything runs where Vulkan is missing; needs only
        // the headers (libvulkan-dev) to build.
        .target(name: "CBitNetVulkan", linkerSettings: [.linkedLibrary("dl")]),
        // Compiles Shaders/*.comp to SPIR-V with glslangValidator during the build (nothing compiled is committed).
        .plugin(name: "CompileShaders", capability: .buildTool()),
        // The Vulkan backend: the devices this machine has, and the forward pass recorded for one of them.
        .target(
            name: "BitNetVulkan",
            dependencies: ["CBitNetVulkan", "BitNetEngine", "BitNetModels"],
            plugins: ["CompileShaders"]
        ),
        // The API for apps and servers: models on a chosen backend, sessions, chat, sampling, generation.
        .target(name: "BitNetInference", dependencies: ["BitNetEngine", "BitNetCPU", "BitNetVulkan", "BitNetModels", "BitNetFormats"]),
        // Conversion of checkpoints to GGUF; the calibration report is the only part that runs a model.
        .target(name: "BitNetConversion", dependencies: ["BitNetModels", "BitNetFormats", "BitNetQuantization", "BitNetInference", "BitNetCPU"]),
        // `bitnet serve`: an OpenAI-compatible HTTP server over the library's continuous batching. The one
        // library target with package dependencies (Hummingbird 2, swift-service-lifecycle).
        .target(
            name: "BitNetServer",
            dependencies: [
                "BitNetInference",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "bitnet",
            dependencies: [
                "BitNetCPU",
                "BitNetFormats",
                "BitNetInference",
                "BitNetConversion",
                "BitNetServer",
                "BitNetVulkan",
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
            name: "KernelBenchmark",
            dependencies: ["CBitNetKernels"],
            path: "Benchmarks/KernelBenchmark"
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
        // Fuzzing (scripts/fuzz): the inputs a stranger controls, a C shim around libFuzzer's driver, and the
        // harness executable; the regression tests replay what the fuzzers found.
        .target(
            name: "FuzzTargets",
            dependencies: ["BitNetFormats", "BitNetQuantization", "BitNetModels", "BitNetInference", "BitNetCPU"],
            path: "Tests/Fuzz/Targets"
        ),
        .target(name: "CFuzzDriver", path: "Tests/Fuzz/Driver"),
        .executableTarget(
            name: "bitnet-fuzz",
            dependencies: ["FuzzTargets", "CFuzzDriver"],
            path: "Tests/Fuzz/Harness"
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
            name: "BitNetConversionTests",
            dependencies: ["BitNetConversion", "BitNetInference", "BitNetModels", "BitNetFormats", "BitNetQuantization", "TestSupport"]
        ),
        .testTarget(
            name: "BitNetModelsTests",
            dependencies: ["BitNetModels", "BitNetFormats", "TestSupport"]
        ),
        .testTarget(
            name: "BitNetInferenceTests",
            dependencies: ["BitNetInference", "BitNetEngine", "BitNetCPU", "BitNetVulkan", "BitNetModels", "BitNetFormats", "BitNetQuantization", "CBitNetKernels", "TestSupport"]
        ),
        .testTarget(
            name: "FuzzRegressionTests",
            dependencies: ["FuzzTargets", "BitNetModels", "TestSupport"]
        ),
        .testTarget(
            name: "BitNetVulkanTests",
            dependencies: ["BitNetVulkan", "BitNetInference", "BitNetEngine", "BitNetModels", "BitNetFormats", "BitNetQuantization", "TestSupport"]
        ),
        // The server over real HTTP on a loopback port the OS picks.
        .testTarget(
            name: "BitNetServerTests",
            dependencies: ["BitNetServer", "BitNetInference", "BitNetFormats", "TestSupport"]
        ),
        // The `bitnet` executable run as a user runs it (it is built before the tests).
        .testTarget(
            name: "BitNetCommandLineTests",
            dependencies: ["BitNetInference", "BitNetFormats", "TestSupport"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
