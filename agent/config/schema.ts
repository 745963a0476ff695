// The single source of truth for configuration: types, defaults and documentation
// live here; docs/configuration.md describes the same keys for people.
// `restart` marks keys that only take effect when the agent starts.

const listen = {
  type: 'string',
  pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$',
  description: 'host:port to listen on ([v6]:port for IPv6)',
} as const;

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['site', 'sip', 'extensions'],
  properties: {
    site: {
      type: 'object',
      additionalProperties: false,
      required: ['id'],
      properties: {
        id: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$', description: 'site identifier, unique in the fleet' },
        name: { type: 'string' },
      },
    },
    state_dir: { type: 'string', minLength: 1, default: './data', description: 'where the SQLite store lives', restart: true },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
      },
    },
    sip: {
      type: 'object',
      additionalProperties: false,
      required: ['domain'],
      properties: {
        domain: { type: 'string', minLength: 1, description: 'SIP domain, also the digest realm' },
        udp: { ...listen, default: '0.0.0.0:5060' },
        tcp: { ...listen, default: '0.0.0.0:5060' },
        max_message_bytes: { type: 'integer', minimum: 1500, maximum: 1048576, default: 65535 },
        tcp_max_connections: { type: 'integer', minimum: 1, default: 2048 },
        tcp_idle_timeout: { type: 'integer', minimum: 10, default: 900, description: 'seconds' },
        timers: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'RFC 3261 timer base values in milliseconds; change only for links with unusual round-trip times',
          properties: {
            t1: { type: 'integer', minimum: 10, maximum: 10000, default: 500 },
            t2: { type: 'integer', minimum: 100, maximum: 60000, default: 4000 },
            t4: { type: 'integer', minimum: 100, maximum: 60000, default: 5000 },
          },
        },
        registrar: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            min_expires: { type: 'integer', minimum: 1, default: 60 },
            max_expires: { type: 'integer', minimum: 1, default: 7200 },
            default_expires: { type: 'integer', minimum: 1, default: 3600 },
            max_contacts: { type: 'integer', minimum: 1, maximum: 100, default: 5 },
          },
        },
        auth: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            algorithms: {
              type: 'array',
              minItems: 1,
              uniqueItems: true,
              items: { enum: ['SHA-256', 'MD5'] },
              default: ['SHA-256', 'MD5'],
            },
            nonce_lifetime: { type: 'integer', minimum: 10, maximum: 86400, default: 300, description: 'seconds' },
          },
        },
        security: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            rate_limit: {
              type: 'object',
              additionalProperties: false,
              default: {},
              properties: {
                requests_per_second: { type: 'number', exclusiveMinimum: 0, default: 100 },
                burst: { type: 'integer', minimum: 1, default: 400 },
              },
            },
            lockout: {
              type: 'object',
              additionalProperties: false,
              default: {},
              properties: {
                failures: { type: 'integer', minimum: 1, default: 10 },
                window: { type: 'integer', minimum: 1, default: 60, description: 'seconds' },
                duration: { type: 'integer', minimum: 1, default: 600, description: 'seconds' },
              },
            },
            scanner_user_agents: {
              type: 'array',
              items: { type: 'string', minLength: 1 },
              default: ['friendly-scanner', 'sipvicious', 'sipcli', 'sip-scan', 'sipsak', 'VaxSIPUserAgent', 'iWar', 'SIVuS', 'pplsip', 'Gulp', 'smap'],
            },
            trusted_networks: {
              type: 'array',
              items: { type: 'string', pattern: '^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$' },
              default: [],
              description: 'sources exempt from rate limiting and lockout',
            },
          },
        },
      },
    },
    // agent/sync and agent/health (docs/sync.md). With no `mqtt.url` the agent runs
    // its embedded broker and connects to it.
    mqtt: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        url: { type: 'string', pattern: '^mqtts?://[^\\s/]+(:[0-9]{1,5})?/?$', description: 'broker URL: mqtt://host:1883 or mqtts://host:8883', restart: true },
        client_id: { type: 'string', minLength: 1, maxLength: 128, description: 'default branchline-site-<site.id>' },
        username: { type: 'string' },
        password: { type: 'string' },
        ca: { type: 'string', minLength: 1, description: 'PEM file: the CA that signed the broker certificate (mqtts)' },
        cert: { type: 'string', minLength: 1, description: 'PEM file: client certificate (mqtts)' },
        key: { type: 'string', minLength: 1, description: 'PEM file: client private key (mqtts)' },
        reject_unauthorized: { type: 'boolean', default: true },
        protocol_version: { enum: [4, 5], default: 5, description: 'MQTT 5 or 3.1.1; the embedded broker always uses 3.1.1' },
        keepalive: { type: 'integer', minimum: 2, maximum: 3600, default: 10, description: 'seconds' },
        reconnect_period: { type: 'number', minimum: 0.1, maximum: 600, default: 2, description: 'seconds between reconnect attempts' },
        connect_timeout: { type: 'number', minimum: 1, maximum: 600, default: 10, description: 'seconds' },
        embedded: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            listen: { ...listen, default: '127.0.0.1:1883' },
            drain_timeout: { type: 'number', minimum: 1, default: 10, description: 'seconds a slow client may take to drain before it is disconnected' },
          },
        },
      },
    },
    sync: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        window: { type: 'integer', minimum: 1, maximum: 10000, default: 100, description: 'unacknowledged messages in flight per stream' },
        ack_timeout: { type: 'number', minimum: 0.1, default: 10, description: 'seconds before unacknowledged messages are sent again' },
        max_bytes: { type: 'integer', minimum: 65536, default: 268435456, description: 'outbox disk quota; telemetry then events are shed past it' },
      },
    },
    health: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        telemetry_period: { type: 'number', minimum: 0.5, default: 60, description: 'seconds between telemetry samples' },
        enter_after: { type: 'number', minimum: 0, default: 2, description: 'seconds of WAN trouble before survivable mode' },
        return_after: { type: 'number', minimum: 0, default: 120, description: 'seconds of stable WAN before leaving survivable mode' },
        probe_interval: { type: 'number', minimum: 0.1, default: 2, description: 'seconds between active WAN probes' },
        probe_timeout: { type: 'number', minimum: 0.1, default: 1.5, description: 'seconds' },
        probes: {
          type: 'array',
          items: listen,
          description: 'host:port TCP targets probed for WAN reachability; default: the broker of mqtt.url',
        },
      },
    },
    extensions: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['number', 'password'],
        properties: {
          number: { type: 'string', pattern: '^[0-9]{2,15}$' },
          name: { type: 'string' },
          password: { type: 'string', minLength: 4 },
          auth_algorithms: {
            type: 'array',
            minItems: 1,
            uniqueItems: true,
            items: { enum: ['SHA-256', 'MD5'] },
            description: 'digest algorithms offered to this extension; default sip.auth.algorithms',
          },
          // voicemail and routing options arrive with their issues; unknown keys are errors.
        },
      },
    },
  },
} as const;
