// swift-tools-version: 6.1
import PackageDescription

// Layering (see ARCHITECTURE.md): dependencies point down only.
//   chaosledger -> LedgerAudit, LedgerNode -> LedgerProjections -> LedgerStore -> LedgerCrypto -> LedgerCore
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
    ],
    targets: [
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .target(name: "LedgerCore", swiftSettings: strict),
        .target(name: "LedgerCrypto", dependencies: ["LedgerCore", "CSodium"], swiftSettings: strict),
        .target(name: "LedgerStore", dependencies: ["LedgerCore", "LedgerCrypto", "CLMDB"], swiftSettings: strict),
        .target(name: "LedgerProjections", dependencies: ["LedgerCore", "LedgerCrypto"], swiftSettings: strict),
        .target(name: "LedgerConsensus", dependencies: ["LedgerCore", "LedgerCrypto", "LedgerProjections"], swiftSettings: strict),
        .target(name: "LedgerAgents", dependencies: ["LedgerCore", "LedgerCrypto", "LedgerProjections", "LedgerConsensus"], swiftSettings: strict),
        .target(name: "LedgerSimulation", dependencies: ["LedgerCore", "LedgerCrypto", "LedgerProjections", "LedgerConsensus", "LedgerAgents"], swiftSettings: strict),
        .target(name: "LedgerNode", dependencies: ["LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerAudit"], swiftSettings: strict),
        .target(name: "LedgerAudit", dependencies: ["LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections"], swiftSettings: strict),
        .executableTarget(
            name: "chaosledger",
            dependencies: [
                "LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerNode", "LedgerAudit",
                "LedgerConsensus", "LedgerAgents", "LedgerSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "LedgerTests",
            dependencies: [
                "LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerNode", "LedgerAudit",
                "LedgerConsensus", "LedgerAgents", "LedgerSimulation", "chaosledger",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strict
        ),
    ]
)
