// swift-tools-version:6.0
import PackageDescription

let package = Package(
  name: "curvalid",
  platforms: [.macOS(.v13)],
  products: [
    .executable(name: "curvalid", targets: ["curvalid"])
  ],
  targets: [
    // C boundaries: one per system library.
    .systemLibrary(
      name: "COpenBLAS",
      path: "Sources/COpenBLAS",
      providers: [.apt(["libopenblas-dev"])]
    ),
    .systemLibrary(
      name: "CSQLite",
      path: "Sources/CSQLite",
      providers: [.apt(["libsqlite3-dev"])]
    ),

    // Numerics.
    .target(name: "LinearAlgebra", dependencies: ["COpenBLAS"]),

    // SHA-256 for weight verification, bundle digests and the audit hash chain.
    .target(name: "Hashing"),

    // Text to token ids.
    .target(name: "Tokenization"),

    // Weights and the transformer encoder.
    .target(name: "Embeddings", dependencies: ["LinearAlgebra", "Tokenization", "Hashing"]),

    // Curvature and local intrinsic dimensionality.
    .target(name: "Geometry", dependencies: ["LinearAlgebra"]),

    // Trainable layers with forward and backward passes.
    .target(name: "NeuralNetwork", dependencies: ["LinearAlgebra"]),

    // Fine-tuning the encoder's top layers on the detection objective (backward through BERT layers).
    .target(name: "EncoderTuning", dependencies: ["LinearAlgebra", "Embeddings", "NeuralNetwork"]),

    // Feature network + classifier + threshold = Detector; bundles; training; metrics.
    .target(
      name: "Detection",
      dependencies: [
        "LinearAlgebra", "Hashing", "Tokenization", "Embeddings", "Geometry", "NeuralNetwork",
        "EncoderTuning",
      ]
    ),

    // The SQLite audit log (the only importer of SQLite).
    .target(name: "DecisionLog", dependencies: ["CSQLite", "Hashing"]),

    // Listeners, framing, protocol, scheduling and admin operations of `curvalid serve`.
    .target(name: "Serving", dependencies: ["Detection", "DecisionLog", "Hashing"]),

    // The command-line front end and its entry point.
    .target(
      name: "CurvalidCommands",
      dependencies: [
        "LinearAlgebra", "Hashing", "Tokenization", "Embeddings", "Detection", "DecisionLog", "Serving",
      ]
    ),
    .executableTarget(name: "curvalid", dependencies: ["CurvalidCommands"]),

    // Shared test helpers: tolerances, seeded random numbers, fixture paths.
    .target(name: "TestSupport", dependencies: ["LinearAlgebra"], path: "Tests/TestSupport"),
    .testTarget(name: "LinearAlgebraTests", dependencies: ["LinearAlgebra", "TestSupport"]),
    .testTarget(name: "HashingTests", dependencies: ["Hashing", "TestSupport"]),
    .testTarget(name: "TokenizationTests", dependencies: ["Tokenization", "TestSupport"]),
    .testTarget(name: "EmbeddingsTests", dependencies: ["Embeddings", "TestSupport"]),
    .testTarget(name: "GeometryTests", dependencies: ["Geometry", "TestSupport"]),
    .testTarget(name: "NeuralNetworkTests", dependencies: ["NeuralNetwork", "TestSupport"]),
    .testTarget(
      name: "DetectionTests",
      dependencies: ["Detection", "Embeddings", "Geometry", "NeuralNetwork", "Tokenization", "TestSupport"]),
    .testTarget(
      name: "EncoderTuningTests",
      dependencies: ["EncoderTuning", "Embeddings", "NeuralNetwork", "TestSupport"]),
    .testTarget(name: "DecisionLogTests", dependencies: ["DecisionLog", "TestSupport"]),
    .testTarget(
      name: "ServingTests", dependencies: ["Serving", "Detection", "DecisionLog", "Hashing", "TestSupport"]),
    .testTarget(
      name: "CurvalidCommandsTests",
      dependencies: ["CurvalidCommands", "DecisionLog", "TestSupport", "curvalid"]),
  ]
)
