import Hummingbird
import Metrics
import Prometheus

public enum NodeMetrics {
    /// swift-metrics takes one factory per process; a static let runs its initialiser
    /// exactly once, however many servers (or tests) ask.
    private static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    /// Bootstraps swift-metrics with a Prometheus factory once per process and returns its registry.
    public static func bootstrap() -> PrometheusCollectorRegistry { registry }
}

/// Counts requests by route and status and times them. The route label is the
/// matched template ("GET /v1/blocks/{height}"), never the raw path: raw paths would
/// give every block height its own time series. Unmatched requests share one label.
struct RequestMetricsMiddleware: RouterMiddleware {
    typealias Context = APIContext

    func handle(_ request: Request, context: APIContext, next: (Request, APIContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        // The error middleware below turns every error into a response; a throw reaching
        // here is a cancelled request, which has no status to count.
        let response = try await next(request, context)
        let route = API.endpoint(method: request.method, path: context.endpointPath).map { "\($0.method) \($0.path)" } ?? "unmatched"
        Counter(label: "chaosledger_http_requests_total", dimensions: [("route", route), ("status", String(response.status.code))])
            .increment()
        // Measured to the response head: an SSE subscription's body lasts as long as
        // the client stays, which is not the request's latency.
        Timer(label: "chaosledger_http_request_duration_seconds", dimensions: [("route", route)], preferredDisplayUnit: .seconds)
            .recordInterval(since: start)
        return response
    }
}

extension Timer {
    fileprivate func recordInterval(since start: ContinuousClock.Instant) {
        let d = ContinuousClock.now - start
        recordNanoseconds(d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000)
    }
}
