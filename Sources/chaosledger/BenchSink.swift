import ArgumentParser
import Foundation
import LedgerCore
import LedgerSink
import Logging

/// `chaosledger bench-sink`: the PostgreSQL sink's backfill rate next to a raw COPY of the
/// same block and event rows, at several log sizes, in one run; or the live lag of a sink
/// that followed a running chain.
struct BenchSink: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-sink",
        abstract: "Benchmark the PostgreSQL sink: backfill events/s against raw COPY, and live lag.",
        discussion: """
        Backfill: for each size, writes a demo log of that many submissions, then (in turn,
        `--runs` times) copies its block and event rows with COPY into chaosledger_raw
        (the baseline: no verification, fold or projection) and backfills it with the sink
        into a fresh schema chaosledger (created, with the genesis state, before the clock
        starts, as the baseline's tables are). Reports the medians and their ratio.
        Lag (--lag): reads the blocks table of a sink that followed a live chain and reports
        the time from each block's header timestamp to its row's commit (sunk_at).
        """)
    @Option(help: "postgres://user@host:port/database (the schemas chaosledger and chaosledger_raw are dropped).")
    var database = "postgres://postgres@127.0.0.1:5433/postgres"
    @Option(help: "Demo log sizes (submissions), comma-separated.") var sizes = "20000,40000"
    @Option var runs = 5
    @Option(help: "Where the demo logs go.") var dir = ".build/bench-sink"
    @Flag(help: "Report the live lag of the sink in --database instead.") var lag = false

    func run() async throws {
        if lag { return try await reportLag() }
        for size in sizes.split(separator: ",").compactMap({ Int($0) }) {
            let log = dir + "/demo-\(size)"
            if !FileManager.default.fileExists(atPath: log + "/data.mdb") {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                let p = Process()
                p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
                p.arguments = ["demo", "--dir", log, "--events", "\(size)"]
                p.standardOutput = FileHandle.nullDevice
                try p.run()
                p.waitUntilExit()
                guard p.terminationStatus == 0 else { throw CLIError("demo --events \(size) failed") }
            }
            var sinkRates: [Double] = [], rawRates: [Double] = []
            var events: UInt64 = 0
            for _ in 0 ..< runs {
                var config = SinkConfig(logPath: log)
                try config.setDatabase(url: database)
                config.stopAtHead = true
                var logger = Logger(label: "bench-sink")
                logger.logLevel = .error
                let raw = try await PostgresSink(config, logger: logger).rawCopyBaseline()
                rawRates.append(Double(raw.events) / raw.seconds)
                try dropSinkSchema()
                // The schema and the genesis state first, as the baseline's tables are
                // made before its clock starts: the clock times the backfill itself.
                var setup = config
                setup.untilHeight = Height(0)
                _ = try await PostgresSink(setup, logger: logger).run()
                let start = DispatchTime.now().uptimeNanoseconds
                let done = try await PostgresSink(config, logger: logger).run()
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                sinkRates.append(Double(done.events) / seconds)
                events = done.events
            }
            let s = sinkRates.sorted()[runs / 2], r = rawRates.sorted()[runs / 2]
            print(String(format: "%d events: sink backfill %.0f ev/s, raw COPY of the same block and event rows %.0f ev/s, ratio %.2f (medians of %d)",
                         events, s, r, s / r, runs))
        }
    }

    func dropSinkSchema() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        p.arguments = [database, "-qc", "DROP SCHEMA IF EXISTS chaosledger CASCADE"]
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
    }

    func reportLag() async throws {
        let p = Process(), out = Pipe()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        p.arguments = [database, "-Atc", """
            SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), max(lag)
            FROM (SELECT extract(epoch FROM sunk_at) * 1000 - timestamp_ms AS lag FROM chaosledger.blocks
                  WHERE height > (SELECT min(height) + 10 FROM chaosledger.blocks)) q
            """]
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let v = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|").map(String.init)
        guard v.count == 4 else { throw CLIError("no blocks to measure in \(database): \(text)") }
        print("live lag, block header time to row committed, over \(v[0]) blocks: p50 \(v[1]) ms, p99 \(v[2]) ms, max \(v[3]) ms")
    }
}
