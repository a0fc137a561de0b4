// swift-tools-version: 6.1
import PackageDescription

// Layering (see ARCHITECTURE.md): dependencies point down only.
//   chaosledger -> LedgerHTTP, LedgerMesh -> LedgerNode -> LedgerAudit, LedgerConsensus -> LedgerProjections -> LedgerStore -> LedgerCrypto -> LedgerCore
// Only LedgerStore imports CLMDB; only LedgerCrypto imports CSodium.
let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "ChaosLedger",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "chaosledger", targets: ["chaosledger"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: [.defaults, "CommandLineArguments"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", from: "0.12.1"),
    ],
    targets: [
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .target(name: "LedgerCore", swiftSettings: strict),
        .target(name: "LedgerCrypto", dependencies: ["LedgerCore", "CSodium"], swiftSettings: strict),
        .target(name: "LedgerStore", dependencies: ["LedgerCore", "LedgerCrypto", "CLMDB"], swiftSettings: strict),
        .target(name: "LedgerProjections", dependencies: ["LedgerCore", "LedgerTree"], swiftSettings: strict),
        .target(name: "LedgerConsensus", dependencies: ["LedgerCore", "LedgerProjections"], swiftSettings: strict),
        .target(name: "LedgerAgents", dependencies: ["LedgerCore", "LedgerProjections", "LedgerConsensus"], swiftSettings: strict),
        .target(name: "LedgerSimulation", dependencies: ["LedgerCore", "LedgerCrypto", "LedgerProjections", "LedgerConsensus", "LedgerAgents"], swiftSettings: strict),
        // The node driver: no NIO, no Hummingbird (the mesh and the HTTP API plug in through protocols).
        .target(name: "LedgerNode", dependencies: [
            "LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerAudit", "LedgerConsensus", "LedgerAgents", "LedgerTree",
            .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
        ], swiftSettings: strict),
        // The state commitment: a sparse Merkle tree and its proofs (pure; the hash is handed in).
        .target(name: "LedgerTree", dependencies: ["LedgerCore"], swiftSettings: strict),
        // Workloads that write a log without consensus: the solo producer and the demo.
        .target(name: "LedgerWorkload", dependencies: [
            "LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerAudit", "LedgerAgents",
        ], swiftSettings: strict),
        // The TCP mesh between nodes (SwiftNIO).
        .target(name: "LedgerMesh", dependencies: [
            "LedgerCore", "LedgerCrypto", "LedgerConsensus", "LedgerNode",
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // The HTTP API (Hummingbird 2) and the Prometheus endpoint.
        .target(name: "LedgerHTTP", dependencies: [
            "LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerConsensus", "LedgerNode", "LedgerAudit", "LedgerTree", "LedgerViews",
            .product(name: "Hummingbird", package: "hummingbird"), .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ], swiftSettings: strict),
        // The PostgreSQL sink (PostgresNIO): verified blocks, events and projections as tables.
        .target(name: "LedgerSink", dependencies: [
            "LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerAudit", "LedgerViews",
            .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // JSON views of log records and state, shared by the HTTP API, the CLI and the sink (Foundation only).
        .target(name: "LedgerViews", dependencies: ["LedgerCore", "LedgerStore", "LedgerProjections"], swiftSettings: strict),
        .target(name: "LedgerAudit", dependencies: ["LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections"], swiftSettings: strict),
        .executableTarget(
            name: "chaosledger",
            dependencies: [
                "LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerNode", "LedgerAudit",
                "LedgerConsensus", "LedgerAgents", "LedgerSimulation", "LedgerMesh", "LedgerHTTP", "LedgerWorkload", "LedgerTree",
                "LedgerViews", "LedgerSink",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MCP", package: "swift-sdk"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "LedgerTests",
            dependencies: [
                "LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerNode", "LedgerAudit",
                "LedgerConsensus", "LedgerAgents", "LedgerSimulation", "LedgerMesh", "LedgerHTTP", "LedgerWorkload", "LedgerTree", "chaosledger",
                "LedgerViews", "LedgerSink",
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: strict
        ),
    ]
)
