// The single source of truth for configuration: types, defaults and documentation
// live here; docs/configuration.md describes the same keys for people.
// `restart` marks keys that only take effect when the agent starts.
// After changing it, run `node agent/config/build-validator.ts`: the validator is
// compiled ahead of time (agent/config/validator.ts; a unit test catches a stale one).

const listen = {
  type: 'string',
  pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$',
  description: 'host:port to listen on ([v6]:port for IPv6)',
} as const;

/** A number calls can be sent to: an extension, a ring group or an outside number. */
const dialTarget = { type: 'string', pattern: '^\\+?[0-9]{2,20}$' } as const;

/** A feature code: `*` then digits. */
const featureCode = (code: string, description: string) => ({ type: 'string', pattern: '^\\*[0-9]{1,6}$', default: code, description }) as const;

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
            overload: {
              type: 'object',
              additionalProperties: false,
              default: {},
              properties: {
                max_utilization: { type: 'number', minimum: 0, maximum: 1, default: 0.98, description: 'event-loop utilization, 0-1; 0 = not used' },
                max_event_loop_lag_ms: { type: 'integer', minimum: 0, maximum: 10000, default: 500, description: 'ms; 0 = not used' },
                max_pending_writes: { type: 'integer', minimum: 0, maximum: 1000000, default: 2000, description: '0 = not used' },
                retry_after: { type: 'integer', minimum: 1, maximum: 3600, default: 10, description: 'seconds' },
              },
            },
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
    // agent/sync/peers.ts and agent/sync/files/ (docs/sync.md#peers): where peers send
    // this site's calls (its extensions and top-level `dids` are published with it),
    // and file transfer between sites.
    peers: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        sip_address: { ...listen, description: 'host:port peers send inter-site calls to; default: sip.udp (a wildcard host becomes the first external IPv4 address)' },
        transport: { enum: ['udp', 'tcp'], default: 'udp', description: 'transport peers use for inter-site calls' },
        // Calls between sites (docs/sync.md#calls-between-sites).
        fallback: {
          type: 'array',
          items: { enum: ['pstn', 'voicemail'] },
          uniqueItems: true,
          default: ['pstn', 'voicemail'],
          description: "in order, for a number homed at a peer site that cannot be reached: 'pstn' (its DID through the local trunks), 'voicemail' (taken here, forwarded home)",
        },
        no_response_timeout: { type: 'number', minimum: 0.05, maximum: 32, default: 0.5, description: 'seconds an INVITE to a peer may go without any answer (not even 100 Trying) before the peer counts as unreachable' },
        trusted_networks: { type: 'array', items: { type: 'string' }, default: [], description: 'CIDRs peer calls must come from (besides the address the peer published); empty: any' },
        files: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            chunk_size: { type: 'integer', minimum: 1024, maximum: 1048576, default: 65536, description: 'bytes per chunk of a file sent to a peer' },
            window: { type: 'integer', minimum: 1, maximum: 256, default: 8, description: 'chunks in flight awaiting the receiver' },
            status_timeout: { type: 'number', minimum: 0.1, default: 5, description: 'seconds without an answer before the manifest is sent again' },
            max_bytes: { type: 'integer', minimum: 1024, default: 268435456, description: 'largest file accepted from a peer' },
          },
        },
      },
    },
    // provisioning/ (docs/provisioning.md): zero-touch claim and phone auto-provisioning.
    provisioning: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        claim: {
          type: 'object',
          additionalProperties: false,
          required: ['url', 'token'],
          description: 'first boot: claim this appliance from the controller (`branchline provision`)',
          properties: {
            url: { type: 'string', pattern: '^mqtts?://[^\\s/]+(:[0-9]{1,5})?/?$', description: "the controller's broker" },
            token: { type: 'string', minLength: 8, description: 'one-time claim token from `branchctl claim token`' },
            username: { type: 'string', description: 'bootstrap broker login, if the broker wants one for claims' },
            password: { type: 'string' },
            ca: { type: 'string', pattern: '^/', description: 'absolute path: PEM CA of the broker (mqtts)' },
            protocol_version: { enum: [4, 5], default: 5 },
            retry: { type: 'number', minimum: 0.2, maximum: 3600, default: 15, description: 'seconds between claim attempts while pending' },
          },
        },
        phones: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'phone auto-provisioning over HTTP(S); off unless http or https is set',
          properties: {
            http: { ...listen, description: 'host:port of the plain HTTP provisioning server' },
            https: {
              type: 'object',
              additionalProperties: false,
              required: ['listen', 'cert', 'key'],
              properties: {
                listen: listen,
                cert: { type: 'string', pattern: '^/', description: 'absolute path: PEM certificate (chain)' },
                key: { type: 'string', pattern: '^/', description: 'absolute path: PEM private key' },
              },
            },
            sip_server: { type: 'string', pattern: '^[A-Za-z0-9.:\\[\\]-]+$', description: 'host or address the phones register to; default sip.domain' },
            voicemail_number: { type: 'string', pattern: '^[0-9*#]{1,16}$', default: '*97', description: 'what the message key dials' },
            ntp_server: { type: 'string', pattern: '^[A-Za-z0-9.:-]+$', default: 'pool.ntp.org' },
            time_zone: { type: 'string', minLength: 1, default: 'UTC', description: 'IANA time zone, e.g. Europe/Berlin' },
            devices: {
              type: 'array',
              default: [],
              description: 'the MAC allow-list: only these phones get a configuration',
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['mac', 'vendor', 'extension'],
                properties: {
                  mac: { type: 'string', pattern: '^[0-9A-Fa-f]{2}([:-]?[0-9A-Fa-f]{2}){5}$' },
                  vendor: { enum: ['yealink', 'polycom', 'grandstream'] },
                  extension: { type: 'string', pattern: '^[0-9]{2,15}$', description: 'the number the phone registers as; its password is generated' },
                  name: { type: 'string', maxLength: 64, description: 'shown on the phone' },
                },
              },
            },
          },
        },
      },
    },
    // image/ and firmware-hooks/ (docs/image.md): updates ordered by the controller.
    firmware: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        slots: { type: 'string', pattern: '^/', description: 'absolute path of the A/B slot tree; absent: the firmware.update command is refused' },
        restart_after_update: { type: 'boolean', default: true, description: 'exit after a successful update so the service manager starts the new slot' },
        call_deadline: { type: 'number', minimum: 0, maximum: 86400, default: 300, description: 'seconds pre-reboot waits for calls to end' },
        download_timeout: { type: 'number', minimum: 1, maximum: 86400, default: 600, description: 'seconds to fetch a bundle URL' },
        report_interval: { type: 'number', minimum: 0.1, maximum: 3600, default: 5, description: 'seconds between looks at the update journal for steps to report upstream' },
      },
    },
    // agent/media and agent/calls (docs/media.md, docs/calls.md).
    media: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        bind_address: { type: 'string', minLength: 1, default: '0.0.0.0', description: 'RTP sockets bind here', restart: true },
        advertise_address: { type: 'string', minLength: 1, description: 'address written into SDP; default: the SIP stack\'s advertised address when bound to 0.0.0.0' },
        port_range: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            min: { type: 'integer', minimum: 1024, maximum: 65534, default: 16384 },
            max: { type: 'integer', minimum: 1025, maximum: 65535, default: 32767 },
          },
          restart: true,
        },
        codecs: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['PCMU', 'PCMA'] }, default: ['PCMU', 'PCMA'], description: 'preference for offers and answers' },
        country: { enum: ['US', 'UK', 'DE', 'FR'], default: 'US', description: 'call-progress tones' },
        latching: { type: 'boolean', default: true, description: 'symmetric RTP: send to where the phone\'s RTP comes from (NAT)' },
        media_timeout: { type: 'integer', minimum: 0, default: 0, description: 'seconds without RTP before an anchored call is hung up; 0 = never' },
        policy: { enum: ['direct', 'anchored'], default: 'anchored', description: 'default media policy of a call' },
      },
    },
    calls: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        max_concurrent: { type: 'integer', minimum: 1, default: 500, description: 'calls in progress at once; more are answered 503 with Retry-After' },
        retry_after: { type: 'integer', minimum: 1, default: 30, description: 'seconds, in the Retry-After of that 503' },
        session_expires: { type: 'integer', minimum: 90, maximum: 86400, default: 1800, description: 'seconds: RFC 4028 session interval offered to callers that support timers but ask for none' },
        min_se: { type: 'integer', minimum: 90, maximum: 86400, default: 90, description: 'seconds: shortest session interval accepted; shorter ones get 422 (RFC 4028 forbids under 90)' },
      },
    },
    // agent/voicemail (docs/voicemail.md): site-wide settings; each mailbox is an
    // extension's `voicemail` key.
    voicemail: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        format: { enum: ['ulaw', 'pcm16'], default: 'ulaw', description: 'how messages are stored: 8-bit µ-law WAV (8 kB/s) or 16-bit PCM WAV' },
        prompts_dir: { type: 'string', minLength: 1, description: 'folder of generated prompt WAVs; default: generated/prompts beside the agent', restart: true },
        pin_attempts: { type: 'integer', minimum: 1, maximum: 10, default: 3, description: 'wrong PINs before the call is ended' },
        lockout: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            failures: { type: 'integer', minimum: 1, default: 5, description: 'wrong PINs for one mailbox, across calls, before it is locked' },
            duration: { type: 'integer', minimum: 1, default: 900, description: 'seconds a locked mailbox refuses every PIN' },
          },
        },
        mwi: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            unsolicited: { type: 'boolean', default: true, description: 'send message-summary NOTIFY to registered phones that did not subscribe' },
            min_expires: { type: 'integer', minimum: 1, default: 60, description: 'shortest SUBSCRIBE expiry accepted (seconds; shorter gets 423)' },
            max_expires: { type: 'integer', minimum: 60, default: 3600, description: 'longest SUBSCRIBE expiry granted (seconds)' },
          },
        },
      },
    },
    // agent/calls/routing (docs/dialplan.md).
    dialplan: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        ring_timeout: { type: 'integer', minimum: 5, maximum: 600, default: 30, description: 'seconds an extension rings before no-answer' },
        emergency_numbers: {
          type: 'array',
          uniqueItems: true,
          items: { type: 'string', pattern: '^[0-9]{2,6}$' },
          default: ['112', '911', '999'],
          description: 'always routed out as emergency calls, whoever dials them',
        },
        outbound_patterns: {
          type: 'array',
          items: { type: 'string', minLength: 1, maxLength: 64 },
          default: ['+X.', '0X.', 'NXXNXXXXXX', '1NXXNXXXXXX'],
          description: 'numbers that go out through the trunks: X any digit, Z 1-9, N 2-9, [1-5] a set, . one or more digits, ! zero or more',
        },
        max_forward_hops: { type: 'integer', minimum: 0, maximum: 20, default: 5, description: 'forwards one call may follow; more are ignored (loops end here)' },
        feature_codes: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            dnd_on: featureCode('*78', 'do not disturb on'),
            dnd_off: featureCode('*79', 'do not disturb off'),
            forward_always_on: featureCode('*72', 'followed by a number: forward every call there'),
            forward_always_off: featureCode('*73', 'forward always off'),
            forward_busy_on: featureCode('*90', 'followed by a number: forward when busy'),
            forward_busy_off: featureCode('*91', 'forward busy off'),
            forward_no_answer_on: featureCode('*92', 'followed by a number: forward when not answered'),
            forward_no_answer_off: featureCode('*93', 'forward no-answer off'),
            voicemail_own: featureCode('*97', "the caller's own mailbox"),
            voicemail_any: featureCode('*98', 'any mailbox (optionally followed by its number)'),
            echo_test: featureCode('*43', 'echo test: hear yourself back'),
          },
        },
      },
    },
    ring_groups: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['number', 'members'],
        properties: {
          number: { type: 'string', pattern: '^[0-9]{2,15}$' },
          name: { type: 'string' },
          strategy: { enum: ['simultaneous', 'sequential'], default: 'simultaneous' },
          members: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', pattern: '^[0-9]{2,15}$' }, description: 'extension numbers, in ring order' },
          ring_timeout: { type: 'integer', minimum: 5, maximum: 600, description: 'seconds the group (simultaneous) or each member (sequential) rings; default dialplan.ring_timeout' },
          fallback: { ...dialTarget, description: 'where the call goes when no member answers; default: the caller hears 480' },
        },
      },
    },
    // drivers/ (docs/drivers.md). Driver-specific keys are checked against the driver
    // by drivers/index.ts (lineCardProblems) when the cards are created.
    linecards: {
      type: 'array',
      default: [],
      description: 'line cards: the simulated card (sim) and serial AT-command lines (serial-at)',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['driver', 'name'],
        properties: {
          driver: { enum: ['sim', 'serial-at'] },
          name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$', description: 'unique; trunks name cards by it' },
          type: { enum: ['t1', 'e1', 'fxo'], description: 'sim: the kind of card' },
          spans: { type: 'integer', minimum: 1, maximum: 8, description: 'sim t1/e1: spans on the card (default 1)' },
          signalling: { enum: ['pri', 'cas'], description: 'sim t1/e1: ISDN PRI (default) or CAS' },
          ports: { type: 'integer', minimum: 1, maximum: 32, description: 'sim fxo: number of ports (default 4)' },
          numbers: {
            type: 'array',
            items: { type: 'string', pattern: '^\\+?[0-9]{2,15}$' },
            description: "sim fxo: each port's own number, in port order",
          },
          control: { type: 'string', minLength: 1, description: 'sim: control socket of the simulated PSTN, host:port (loopback) or a Unix socket path', restart: true },
          time_scale: { type: 'number', minimum: 0, maximum: 10, description: 'sim: real signalling times × this (default 1; tests use less)' },
          subscribers: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['number'],
              properties: {
                number: { type: 'string', pattern: '^\\+?[0-9]{2,15}$' },
                name: { type: 'string' },
                behaviour: { enum: ['answer', 'ring', 'busy', 'reject'] },
                answer_after: { type: 'number', minimum: 0, maximum: 300, description: 'seconds' },
                audio: { enum: ['echo', 'tone', 'silence'] },
              },
            },
            description: 'sim: subscribers of the simulated PSTN that outbound calls reach',
          },
          kind: { enum: ['voice-modem', 'cellular'], description: 'serial-at: what is on the serial port' },
          device: { type: 'string', minLength: 1, description: 'serial-at: serial device path' },
          baud: { enum: [9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600], description: 'serial-at (default 115200)' },
          number: { type: 'string', pattern: '^\\+?[0-9]{2,15}$', description: "serial-at: the line's own number" },
          command_timeout: { type: 'number', minimum: 0.1, maximum: 120, description: 'serial-at: seconds (default 5)' },
          dial_timeout: { type: 'number', minimum: 1, maximum: 300, description: 'serial-at: seconds (default 60)' },
          reopen_max: { type: 'number', minimum: 0.1, maximum: 3600, description: 'serial-at: longest pause between reopen attempts, seconds (default 30)' },
        },
        allOf: [
          { if: { required: ['driver'], properties: { driver: { const: 'sim' } } }, then: { required: ['type'], properties: { type: {} } } },
          { if: { required: ['driver'], properties: { driver: { const: 'serial-at' } } }, then: { required: ['kind', 'device'], properties: { kind: {}, device: {} } } },
        ],
      },
    },
    // agent/trunks (docs/trunks.md): trunk groups over line-card channels, outbound
    // routes, inbound DIDs and tenants sharing the channels. With no `trunks`, each
    // line card is one trunk group; with no `routes`, every outside number may use
    // every trunk group in order.
    trunking: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        country_code: { type: 'string', pattern: '^[1-9][0-9]{0,2}$', description: 'for E.164 normalisation, without +' },
        area_code: { type: 'string', pattern: '^[0-9]{1,5}$', description: 'put in front of local numbers when normalising, without the national prefix' },
        international_prefix: { type: 'string', pattern: '^[0-9]{0,4}$', default: '00', description: 'dialled before a country code (NANP: 011)' },
        national_prefix: { type: 'string', pattern: '^[0-9]{0,2}$', default: '0', description: 'dialled before an area code (NANP: 1)' },
        local_digits: { type: 'integer', minimum: 0, maximum: 15, default: 7, description: 'numbers this long or shorter are local (get the area code)' },
        max_queue_wait: { type: 'number', minimum: 0, maximum: 600, default: 20, description: 'seconds an outbound call may wait for a channel; 0: refuse at once when all are busy' },
        retry_after: { type: 'integer', minimum: 1, maximum: 3600, default: 10, description: 'seconds, in the Retry-After of a 503 for busy channels' },
        progress_timeout: { type: 'number', minimum: 0.1, maximum: 60, default: 3, description: 'seconds after dialling to wait for ringing or a congestion release before the call is handed on' },
        usage_flush: { type: 'number', minimum: 1, maximum: 3600, default: 60, description: 'seconds between writes of the hourly usage statistics' },
      },
    },
    trunks: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'linecard'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$', description: 'unique; routes name trunk groups by it' },
          linecard: { type: 'string', minLength: 1, description: 'linecards[].name' },
          spans: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'integer', minimum: 1, maximum: 64 }, description: 'spans (FXO: ports) of the card; default all' },
          channels: { type: 'string', pattern: '^[0-9]{1,2}(-[0-9]{1,2})?(,[0-9]{1,2}(-[0-9]{1,2})?)*$', description: 'channels of each span, e.g. "1-15,17"; default all' },
          direction: { enum: ['inbound', 'outbound', 'both'], default: 'both', description: 'which calls may use the channels' },
          caller_id: { enum: ['pass', 'fixed', 'tenant'], default: 'pass', description: "caller ID sent out: the caller's own, caller_id_number, or the tenant's" },
          caller_id_number: { type: 'string', pattern: '^\\+?[0-9]{2,15}$', description: 'the number sent with caller_id fixed (and for tenant, when the tenant has none)' },
        },
      },
    },
    routes: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['pattern', 'trunks'],
        properties: {
          name: { type: 'string', minLength: 1 },
          pattern: { type: 'string', minLength: 1, maxLength: 64, description: 'the outside number, dial-plan notation (X Z N [1-5] . !); first matching route wins' },
          trunks: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', minLength: 1 }, description: 'trunk groups in failover order' },
          strip: { type: 'integer', minimum: 0, maximum: 15, default: 0, description: 'leading digits removed' },
          prefix: { type: 'string', pattern: '^\\+?[0-9*#]{0,15}$', default: '', description: 'digits put in front after stripping' },
          e164: { type: 'boolean', default: false, description: 'normalise to E.164 (+…) after strip and prefix; never for emergency calls' },
          tenants: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', minLength: 1 }, description: 'only these tenants may use the route; default all' },
        },
      },
    },
    dids: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['number'],
        properties: {
          number: { type: 'string', pattern: '^\\+?[0-9]{2,15}$', description: 'the dialled number as the line delivers it (or its E.164 form)' },
          extension: { type: 'string', pattern: '^[0-9]{2,15}$' },
          group: { type: 'string', pattern: '^[0-9]{2,15}$', description: 'ring_groups[].number' },
          voicemail: { type: 'string', pattern: '^[0-9]{2,15}$', description: 'the mailbox (extension) that takes the message' },
          app: { type: 'string', minLength: 1, maxLength: 64, description: 'an application, by name' },
          tenant: { type: 'string', minLength: 1, description: "whose channels the call uses; default: the target extension's tenant" },
        },
      },
    },
    tenants: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$', description: '"default" sets the policy of callers in no other tenant' },
          extensions: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 32 }, default: [], description: "the tenant's extensions: numbers or dial-plan patterns" },
          max_channels: { type: 'integer', minimum: 1, description: 'concurrent channels, both directions; default no cap' },
          calls_per_minute: { type: 'number', exclusiveMinimum: 0, description: 'sustained outbound call attempts; default no throttle' },
          burst: { type: 'integer', minimum: 1, default: 5, description: 'attempts allowed at once above calls_per_minute' },
          max_queued: { type: 'integer', minimum: 1, default: 100, description: 'outbound calls waiting for a channel at once' },
          caller_id: { type: 'string', pattern: '^\\+?[0-9]{2,15}$', description: 'the number trunks with caller_id tenant send' },
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
          media_policy: { enum: ['direct', 'anchored'], description: "this phone's calls: agent relays RTP (anchored) or phones send it to each other (direct); default media.policy" },
          voicemail: {
            type: 'object',
            additionalProperties: false,
            required: ['pin'],
            description: 'the extension has a mailbox when this key is present (docs/voicemail.md)',
            properties: {
              pin: { type: 'string', pattern: '^[0-9]{4,10}$', description: 'mailbox PIN, 4–10 digits; a PIN changed by phone overrides it until this value changes' },
              max_messages: { type: 'integer', minimum: 1, maximum: 10000, default: 100, description: 'messages kept in all folders; a full mailbox takes no more' },
              max_message_seconds: { type: 'integer', minimum: 5, maximum: 3600, default: 180, description: 'recording stops at this length' },
              min_message_seconds: { type: 'number', minimum: 0, maximum: 60, default: 1, description: 'shorter recordings are discarded' },
              silence_seconds: { type: 'number', minimum: 1, maximum: 60, default: 5, description: 'recording stops after this much silence (trimmed from the message)' },
            },
          },
          // agent/calls/routing (docs/dialplan.md). Forward targets are checked against
          // the extensions, ring groups and outbound patterns after the schema.
          ring_timeout: { type: 'integer', minimum: 5, maximum: 600, description: 'seconds this extension rings before no-answer; default dialplan.ring_timeout' },
          dnd: { type: 'boolean', default: false, description: 'do not disturb; the DND feature codes override it' },
          call_waiting: { type: 'boolean', default: true, description: 'false: a call while the extension is in a call is busy at once' },
          forward: {
            type: 'object',
            additionalProperties: false,
            description: 'call forwarding; the forward feature codes override always, busy and no_answer',
            properties: {
              always: { ...dialTarget, description: 'every call goes there, the phone does not ring' },
              busy: { ...dialTarget, description: 'when busy, declined or in do-not-disturb' },
              no_answer: { ...dialTarget, description: 'when not answered within no_answer_timeout' },
              unavailable: { ...dialTarget, description: 'when no phone is registered or none can be reached' },
              no_answer_timeout: { type: 'integer', minimum: 5, maximum: 600, description: 'seconds before forward no_answer; default the ring timeout' },
            },
          },
        },
      },
    },
  },
} as const;
