import Foundation
import Testing

/// STYLE §8: the layer diagram is enforced. Each module may import only the modules
/// below it; C libraries are imported by exactly one module each; pure modules read no
/// clock, no system randomness, and start no threads.
@Suite struct LayeringTests {
    static let allowed: [String: Set<String>] = [
        "LedgerCore": [],
        "LedgerCrypto": ["LedgerCore", "CSodium"],
        "LedgerTree": ["LedgerCore"],
        "LedgerStore": ["LedgerCore", "LedgerCrypto", "CLMDB"],
        "LedgerProjections": ["LedgerCore", "LedgerTree"],
        "LedgerConsensus": ["LedgerCore", "LedgerProjections"],
        "LedgerAgents": ["LedgerCore", "LedgerProjections", "LedgerConsensus"],
        "LedgerSimulation": ["LedgerCore", "LedgerCrypto", "LedgerProjections", "LedgerConsensus", "LedgerAgents"],
        "LedgerAudit": ["LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections"],
        "LedgerNode": ["LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerAudit", "LedgerConsensus",
                       "LedgerAgents", "LedgerTree", "Logging", "Metrics"],
        "LedgerWorkload": ["LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerAudit", "LedgerAgents"],
        "LedgerMesh": ["LedgerCore", "LedgerCrypto", "LedgerConsensus", "LedgerNode", "NIOCore", "NIOPosix", "Logging"],
        "LedgerViews": ["LedgerCore", "LedgerStore", "LedgerProjections"],
        "LedgerSink": ["LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerAudit", "LedgerViews", "PostgresNIO", "Logging"],
        "LedgerHTTP": ["LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerConsensus", "LedgerNode", "LedgerAudit", "LedgerTree",
                       "LedgerViews", "Hummingbird", "Logging", "Metrics", "Prometheus", "HummingbirdCore", "NIOCore"],
        "chaosledger": ["LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerAudit", "LedgerNode",
                        "LedgerConsensus", "LedgerAgents", "LedgerSimulation", "LedgerMesh", "LedgerHTTP", "LedgerWorkload", "LedgerTree", "LedgerViews", "LedgerSink", "MCP", "ArgumentParser",
                        "Configuration", "ServiceLifecycle", "Logging", "Metrics", "SystemPackage"],
    ]
    static let system: Set<String> = ["Foundation", "FoundationNetworking", "Dispatch", "Glibc", "Synchronization"]
    static let pure: Set<String> = ["LedgerCore", "LedgerTree", "LedgerProjections", "LedgerConsensus", "LedgerAgents", "LedgerSimulation"]
    /// The pure core: crypto, disk and sockets reach it only through LedgerCore's
    /// protocols (`Primitives`, `Signer`), handed in by the node, the tools and the
    /// simulator. These edges must never exist, in the sources or in Package.swift.
    static let core: [String] = ["LedgerCore", "LedgerTree", "LedgerProjections", "LedgerConsensus", "LedgerAgents"]
    static let neverBelowCore: Set<String> = ["LedgerCrypto", "CSodium", "LedgerStore", "CLMDB", "LedgerNode", "LedgerMesh",
                                             "LedgerHTTP", "LedgerAudit", "LedgerWorkload", "LedgerSimulation", "LedgerViews", "LedgerSink", "NIOCore",
                                             "NIOPosix", "Hummingbird", "PostgresNIO", "Foundation", "Glibc"]

    func sources(_ module: String) throws -> [(String, String)] {
        let dir = repoRoot + "/Sources/" + module
        return try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".swift") }.map {
            ($0, try String(contentsOfFile: dir + "/" + $0, encoding: .utf8))
        }
    }

    @Test(arguments: allowed.keys.sorted())
    func importsPointDown(_ module: String) throws {
        for (file, text) in try sources(module) {
            for line in text.split(separator: "\n") {
                let t = line.trimmingCharacters(in: .whitespaces)
                guard t.hasPrefix("import ") else { continue }
                let name = String(t.dropFirst(7)).trimmingCharacters(in: .whitespaces)
                #expect(Self.allowed[module]!.contains(name) || Self.system.contains(name),
                        "\(module)/\(file) imports \(name), which is not below it")
            }
        }
    }

    /// Every import line of a module's sources, as (file, module imported).
    func imports(_ module: String) throws -> [(String, String)] {
        try sources(module).flatMap { file, text in
            text.split(separator: "\n").compactMap { line -> (String, String)? in
                let t = line.trimmingCharacters(in: .whitespaces)
                guard t.hasPrefix("import ") else { return nil }
                return (file, String(t.dropFirst(7)).trimmingCharacters(in: .whitespaces))
            }
        }
    }

    /// The dependencies Package.swift declares for `target` (its `.target(name:` line).
    func declaredDependencies(_ target: String) throws -> Set<String> {
        let manifest = try String(contentsOfFile: repoRoot + "/Package.swift", encoding: .utf8)
        guard let line = manifest.split(separator: "\n").first(where: { $0.contains(".target(name: \"\(target)\"") }) else {
            Issue.record("Package.swift declares no target \(target)")
            return []
        }
        guard let open = line.range(of: "dependencies: ["), let close = line.range(of: "]", range: open.upperBound ..< line.endIndex) else {
            return []
        }
        return Set(line[open.upperBound ..< close.lowerBound].split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        })
    }

    @Test(arguments: core)
    func theCoreImportsNoCryptoDiskOrSockets(_ module: String) throws {
        let leaks = try imports(module).filter { Self.neverBelowCore.contains($0.1) }
        #expect(leaks.isEmpty, "\(module) must not import \(leaks.map { "\($0.1) (\($0.0))" }.joined(separator: ", "))")
        let declared = try declaredDependencies(module).intersection(Self.neverBelowCore)
        #expect(declared.isEmpty, "Package.swift gives \(module) the dependencies \(declared.sorted())")
    }

    @Test(arguments: pure.sorted())
    func pureModulesStayPure(_ module: String) throws {
        let banned = ["Date()", "Date.now", "DispatchQueue", "Task.detached", "arc4random", "SystemRandomNumberGenerator",
                      ".random(", "import Foundation", "Thread(", "clock_gettime"]
        for (file, text) in try sources(module) {
            for b in banned { #expect(!text.contains(b), "\(module)/\(file) uses \(b)") }
        }
    }
}
