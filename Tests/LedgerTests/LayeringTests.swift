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
        "LedgerProjections": ["LedgerCore", "LedgerCrypto", "LedgerTree"],
        "LedgerConsensus": ["LedgerCore", "LedgerCrypto", "LedgerProjections"],
        "LedgerAgents": ["LedgerCore", "LedgerCrypto", "LedgerProjections", "LedgerConsensus"],
        "LedgerSimulation": ["LedgerCore", "LedgerCrypto", "LedgerProjections", "LedgerConsensus", "LedgerAgents"],
        "LedgerAudit": ["LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections"],
        "LedgerNode": ["LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerAudit", "LedgerConsensus",
                       "LedgerAgents", "Logging", "Metrics"],
        "LedgerWorkload": ["LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerAudit", "LedgerAgents"],
        "LedgerMesh": ["LedgerCore", "LedgerCrypto", "LedgerConsensus", "LedgerNode", "NIOCore", "NIOPosix", "Logging"],
        "LedgerHTTP": ["LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerConsensus", "LedgerNode",
                       "Hummingbird", "Logging", "Metrics", "Prometheus", "HummingbirdCore", "NIOCore"],
        "chaosledger": ["LedgerCore", "LedgerCrypto", "LedgerStore", "LedgerProjections", "LedgerAudit", "LedgerNode",
                        "LedgerConsensus", "LedgerAgents", "LedgerSimulation", "LedgerMesh", "LedgerHTTP", "LedgerWorkload", "LedgerTree", "ArgumentParser",
                        "Configuration", "ServiceLifecycle", "Logging", "Metrics", "SystemPackage"],
    ]
    static let system: Set<String> = ["Foundation", "FoundationNetworking", "Dispatch", "Glibc", "Synchronization"]
    static let pure: Set<String> = ["LedgerCore", "LedgerTree", "LedgerProjections", "LedgerConsensus", "LedgerAgents", "LedgerSimulation"]

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

    @Test(arguments: pure.sorted())
    func pureModulesStayPure(_ module: String) throws {
        let banned = ["Date()", "Date.now", "DispatchQueue", "Task.detached", "arc4random", "SystemRandomNumberGenerator",
                      ".random(", "import Foundation", "Thread(", "clock_gettime"]
        for (file, text) in try sources(module) {
            for b in banned { #expect(!text.contains(b), "\(module)/\(file) uses \(b)") }
        }
    }
}
