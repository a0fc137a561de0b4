import Hummingbird
import LedgerCore
import Synchronization

/// A token bucket per client address. Each request takes one token; tokens refill at
/// `ratePerSecond` up to `burst`. The table of buckets is bounded
/// (`Limits.rateLimitClientsMax`): when it is full, buckets that have refilled
/// completely are forgotten (their clients are indistinguishable from new ones), and if
/// none has, new clients share one overflow bucket rather than growing the table.
final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let ratePerSecond: Double
    private let burst: Double
    private let clientsMax: Int
    private let buckets = Mutex<[String: Bucket]>([:])
    private static let overflowKey = "*overflow*"

    init(ratePerSecond: Double, burst: Double, clientsMax: Int = Limits.rateLimitClientsMax) {
        precondition(ratePerSecond > 0 && burst >= 1, "a rate limiter needs a positive rate and room for one request")
        self.ratePerSecond = ratePerSecond
        self.burst = burst
        self.clientsMax = clientsMax
    }

    /// Takes a token for `client`; nil when granted, else the seconds until one is available.
    func take(_ client: String, now: ContinuousClock.Instant = .now) -> Double? {
        buckets.withLock { table in
            var key = client
            if table[key] == nil, table.count >= clientsMax {
                table = table.filter { refilled($0.value, now) < burst }
                if table.count >= clientsMax { key = Self.overflowKey }
            }
            var b = table[key].map { Bucket(tokens: refilled($0, now), updated: now) } ?? Bucket(tokens: burst, updated: now)
            defer { table[key] = b }
            guard b.tokens >= 1 else { return (1 - b.tokens) / ratePerSecond }
            b.tokens -= 1
            return nil
        }
    }

    private func refilled(_ b: Bucket, _ now: ContinuousClock.Instant) -> Double {
        let elapsed = now - b.updated
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        return min(burst, b.tokens + max(0, seconds) * ratePerSecond)
    }
}

/// Refuses a request with 429 before its body is read when its client is out of tokens.
struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = APIContext
    let limiter: RateLimiter

    func handle(_ request: Request, context: APIContext, next: (Request, APIContext) async throws -> Response) async throws -> Response {
        if API.endpoint(method: request.method, path: context.endpointPath)?.rateLimited ?? true,
           let wait = limiter.take(context.clientAddress ?? "local") {
            var e = APIError(status: .tooManyRequests, code: "rate_limited", message: "too many requests from this address; retry later")
            e.headers[.retryAfter] = String(max(1, Int(wait.rounded(.up))))
            throw e
        }
        return try await next(request, context)
    }
}
