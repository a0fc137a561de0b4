import Hummingbird
import HummingbirdCore
import NIOCore
import LedgerCore
import LedgerNode
import Logging
import Prometheus

/// How the HTTP API listens and what it accepts.
public struct APIConfig: Sendable {
    public var host = "127.0.0.1"
    public var port: Int
    /// Largest request body; checked while the body streams in, so no more is ever buffered.
    public var bodyBytesMax = 4 << 20
    /// Token bucket per client address: refill rate and capacity.
    public var requestsPerSecond = 500.0
    public var burst = 1000.0
    /// The longest a `POST /v1/events?wait=true` may hold its connection.
    public var waitMaxMs: UInt64 = 30_000
    /// Comment lines sent on an idle SSE subscription, so proxies keep it open.
    public var keepAliveMs: UInt64 = 15_000
    /// Connections open at once; more wait in the listen backlog until one closes.
    public var connectionsMax = 4_096
    /// A connection with no request in progress is closed after this long. It also bounds
    /// how long a request's head may take to arrive (a slowloris client that trickles its
    /// headers never completes one) and how long an idle keep-alive socket is held.
    public var idleTimeoutMs: UInt64 = 10_000
    /// Live subscriptions at once; more are refused (503 `too_many_subscribers`).
    public var subscribersMax = 256
    /// A subscriber whose socket takes no bytes for this long (it does not read) is
    /// disconnected; it resumes with Last-Event-ID, and its buffers are released.
    public var subscriberWriteTimeoutMs: UInt64 = 10_000

    public init(port: Int) { self.port = port }
}

/// One entry of the route table. The router is built from `allCases` and the handler
/// switch is exhaustive, so a route cannot be listed without being served (and
/// `schemas/openapi.yaml` is checked against the same table by a test).
enum Endpoint: CaseIterable, Sendable {
    case submit, eventsRange, event, blocksRange, block, stream
    case state, account, genesis, lightPowers, lightCheckpoints, syncSnapshot, syncChunk, validators, validator, agents, agent, agentRegistration, alliances, alliance
    case jobs, job, reputation, memes, meme, proposals, proposal, economy
    case subscribe, fees, peers, status, health, ready, metrics

    var method: HTTPRequest.Method { self == .submit ? .post : .get }

    /// In OpenAPI form; Hummingbird's router reads `{name}` as a capture too.
    var path: String {
        switch self {
        case .submit, .eventsRange: "/v1/events"
        case .event: "/v1/events/{id}"
        case .blocksRange: "/v1/blocks"
        case .block: "/v1/blocks/{height}"
        case .stream: "/v1/streams/{kind}/{key}"
        case .state: "/v1/state"
        case .account: "/v1/accounts/{key}"
        case .genesis: "/v1/genesis"
        case .lightPowers: "/v1/light/powers"
        case .lightCheckpoints: "/v1/light/checkpoints"
        case .syncSnapshot: "/v1/sync/snapshot"
        case .syncChunk: "/v1/sync/chunks"
        case .validators: "/v1/validators"
        case .validator: "/v1/validators/{id}"
        case .agents: "/v1/agents"
        case .agent: "/v1/agents/{key}"
        case .agentRegistration: "/v1/agents/{key}/registration"
        case .alliances: "/v1/alliances"
        case .alliance: "/v1/alliances/{id}"
        case .jobs: "/v1/jobs"
        case .job: "/v1/jobs/{id}"
        case .reputation: "/v1/reputation/{key}"
        case .memes: "/v1/memes"
        case .meme: "/v1/memes/{id}"
        case .proposals: "/v1/proposals"
        case .proposal: "/v1/proposals/{id}"
        case .economy: "/v1/economy"
        case .subscribe: "/v1/subscribe"
        case .fees: "/v1/fees"
        case .peers: "/v1/peers"
        case .status: "/v1/status"
        case .health: "/health"
        case .ready: "/ready"
        case .metrics: "/metrics"
        }
    }

    /// Probes and scrapes are not rate limited: a liveness probe refused with 429 would
    /// get a healthy node restarted by its orchestrator.
    var rateLimited: Bool { ![.health, .ready, .metrics].contains(self) }
}

/// The request context: Hummingbird's core storage plus the client's address, which the
/// rate limiter keys its buckets by.
public struct APIContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The peer's IP address; nil when there is no socket (the in-process test client).
    public let clientAddress: String?

    /// The connection, so a handler can close it (a subscriber that stopped reading).
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        clientAddress = source.channel.remoteAddress?.ipAddress
        channel = source.channel
    }

    /// The submit handler bounds its own body reads (`BodyReader`); this bound applies
    /// only to Hummingbird's own decoding, which the API does not use.
    public var maxUploadSize: Int { 0 }
}

public enum API {
    /// The route table the router is built from, paths in OpenAPI form.
    public static let routes: [(method: String, path: String)] = Endpoint.allCases.map { ($0.method.rawValue, $0.path) }

    /// The HTTP application serving `service`. Middleware order, outermost first:
    /// metrics (sees every final status), errors (turns anything thrown into a JSON
    /// body), rate limit (refuses before a body is read).
    public static func application(service: any NodeService, config: APIConfig, registry: PrometheusCollectorRegistry,
                                   logger: Logger, onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(router: router(service: service, config: config, registry: registry, logger: logger),
                    server: .http1(configuration: .init(idleTimeout: .milliseconds(Int64(config.idleTimeoutMs)))),
                    // A listen backlog as deep as the connection cap: a burst of connections
                    // (hostile or not) waits in the kernel's queue instead of being dropped
                    // and retried a second later, as a full 256-deep queue did.
                    configuration: .init(address: .hostname(config.host, port: config.port), serverName: "chaosledger",
                                         backlog: config.connectionsMax,
                                         availableConnectionsDelegate: MaximumAvailableConnections(config.connectionsMax, logger: logger)),
                    onServerRunning: onServerRunning,
                    logger: logger)
    }

    static func router(service: any NodeService, config: APIConfig, registry: PrometheusCollectorRegistry,
                       logger: Logger) -> Router<APIContext> {
        let router = Router(context: APIContext.self)
        router.add(middleware: RequestMetricsMiddleware())
        router.add(middleware: ErrorMiddleware(logger: logger))
        router.add(middleware: RateLimitMiddleware(limiter: RateLimiter(ratePerSecond: config.requestsPerSecond, burst: config.burst)))
        let handlers = Handlers(service: service, config: config, registry: registry)
        for endpoint in Endpoint.allCases {
            router.on(RouterPath(endpoint.path), method: endpoint.method) { request, context in
                try await handlers.respond(endpoint, request, context)
            }
        }
        return router
    }

    /// The methods the table serves at a concrete request path, for telling a wrong
    /// method (405) from an unknown path (404).
    static func methods(servingPath path: String) -> [String] {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        return routes.filter { route in
            let template = route.path.split(separator: "/", omittingEmptySubsequences: true)
            return template.count == parts.count
                && zip(template, parts).allSatisfy { t, p in t.first == "{" || t == p }
        }.map(\.method)
    }

    /// The endpoint a matched router path names, for the rate-limit exemptions.
    static func endpoint(method: HTTPRequest.Method, path: String?) -> Endpoint? {
        Endpoint.allCases.first { $0.method == method && $0.path == path }
    }
}
