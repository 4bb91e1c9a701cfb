// Types of @lagscale/handler, the lagscale handler SDK for Node.js.

import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import type * as KafkaModule from '@confluentinc/kafka-javascript'

/** A record as the client delivers it. */
export interface Message {
  topic: string
  partition: number
  /** The record's offset (a JavaScript number: exact up to 2^53). */
  offset: number
  key?: Buffer | string | null
  value: Buffer | null
  size: number
  timestamp?: number
  leaderEpoch?: number
  /** Headers in order, each an object of one key. */
  headers?: Array<{ [key: string]: Buffer | string }>
}

/** What the handler function gets besides the record. */
export interface Context {
  topic: string
  partition: number
  /** 1 on the first call for a record, then 2, 3, ... on retries. */
  attempt: number
  /** Aborted when the shutdown timeout expires: stop and throw. */
  signal: AbortSignal
  /** The SDK's logger (pino), with the group and EventConsumer bound. */
  log: Logger
}

/**
 * Handles one record. Returning (or resolving) marks it handled; its
 * offset is committed once every earlier record of its partition is
 * handled too. Throwing (or rejecting) retries it with backoff.
 */
export type HandlerFunction = (message: Message, ctx: Context) => void | Promise<void>

/** The handler contract, as configFromEnv reads it. */
export interface Config {
  brokers: string[]
  topics: string[]
  group: string
  securityProtocol: 'PLAINTEXT' | 'SSL' | 'SASL_PLAINTEXT' | 'SASL_SSL'
  saslMechanism: '' | 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'
  saslUsername: string
  saslPassword: string
  tlsCAFile: string
  tlsCertFile: string
  tlsKeyFile: string
  tlsInsecureSkipVerify: boolean
  /** KAFKA_AUTO_OFFSET_RESET: latest (default) or earliest. */
  autoOffsetReset: 'earliest' | 'latest'
  /** KAFKA_GROUP_TYPE: classic (default) or consumer (KIP-848). */
  groupType: 'classic' | 'consumer'
  /** KAFKA_ISOLATION_LEVEL: read_committed (default) or read_uncommitted. */
  isolationLevel: 'read_committed' | 'read_uncommitted'
  consumer: string
  deadLetterTopic: string
  /** LAGSCALE_HTTP_ADDR, default ":8080"; empty disables the server. */
  httpAddr: string
}

export interface Options {
  /** Environment to read the contract from (default process.env). */
  env?: Record<string, string | undefined>
  /** A ready configuration instead of the environment. */
  config?: Config
  /** Listen address of /healthz, /readyz and /metrics; '' disables them. Overrides LAGSCALE_HTTP_ADDR. */
  httpAddr?: string
  /** Partitions handled at the same time (default 16). */
  concurrency?: number
  /** Records per batch, shared evenly between the partitions with records queued; a partition with fewer than its share leaves the rest to the others (default 1000). */
  maxPollRecords?: number
  /** Tries per record before it is dead-lettered or stalls its partition (default 5). */
  attempts?: number
  /** First retry backoff, doubled after every failure (default 100). */
  initialBackoffMs?: number
  /** Largest retry backoff (default 10000). */
  maxBackoffMs?: number
  /** How long in-flight records may take after SIGTERM (default 25000). */
  shutdownTimeoutMs?: number
  /** How often handled offsets are committed (default 1000). */
  commitIntervalMs?: number
  /** librdkafka properties for the consumer; under `producer`, for the dead-letter producer. */
  kafkaConfig?: Record<string, unknown> & { producer?: Record<string, unknown> }
  /** Logger (default: pino JSON lines on stderr). */
  logger?: Logger
  /** Registry to register the metrics with and serve /metrics from (default: a private one with process metrics). */
  registry?: Registry
  /** Handle SIGTERM and SIGINT (default true): the first drains, a second exits with EXIT_FORCED. */
  signals?: boolean
  /** Aborting it starts a graceful shutdown, as SIGTERM does. */
  signal?: AbortSignal
}

export interface StalledPartition {
  topic: string
  partition: number
  offset: number
  error: string
}

export interface Stats {
  handled: number
  failed: number
  deadLettered: number
  retries: number
  stalled: StalledPartition[]
}

/**
 * Reads the contract, joins the group and calls fn for every record until
 * SIGTERM, SIGINT, options.signal or Handler.stop(); resolves with the
 * final stats after a graceful shutdown, rejects (naming the contract
 * variable at fault) when it cannot start.
 */
export function run (fn: HandlerFunction, options?: Options): Promise<Stats>

export class Handler {
  constructor (fn: HandlerFunction, options?: Options)
  run (): Promise<Stats>
  /** Starts a graceful shutdown. */
  stop (): void
  stats (): Stats
  readonly cfg: Config
  readonly registry: Registry
}

export class ConfigError extends Error {
  /** The contract variable that is missing or malformed. */
  variable: string
}

/** Reads and validates the contract; throws ConfigError. */
export function configFromEnv (env?: Record<string, string | undefined>): Config
/** The librdkafka connection properties (brokers, TLS, SASL) from the contract's variables. */
export function connectionFromEnv (env?: Record<string, string | undefined>): Record<string, string | boolean>

/** Names of the contract's environment variables. */
export const Env: {
  readonly bootstrapServers: 'KAFKA_BOOTSTRAP_SERVERS'
  readonly topics: 'KAFKA_TOPICS'
  readonly consumerGroup: 'KAFKA_CONSUMER_GROUP'
  readonly securityProtocol: 'KAFKA_SECURITY_PROTOCOL'
  readonly saslMechanism: 'KAFKA_SASL_MECHANISM'
  readonly saslUsername: 'KAFKA_SASL_USERNAME'
  readonly saslPassword: 'KAFKA_SASL_PASSWORD'
  readonly tlsCAFile: 'KAFKA_TLS_CA_FILE'
  readonly tlsCertFile: 'KAFKA_TLS_CERT_FILE'
  readonly tlsKeyFile: 'KAFKA_TLS_KEY_FILE'
  readonly tlsInsecure: 'KAFKA_TLS_INSECURE_SKIP_VERIFY'
  readonly autoOffsetReset: 'KAFKA_AUTO_OFFSET_RESET'
  readonly groupType: 'KAFKA_GROUP_TYPE'
  readonly isolationLevel: 'KAFKA_ISOLATION_LEVEL'
  readonly consumer: 'LAGSCALE_CONSUMER'
  readonly deadLetterTopic: 'LAGSCALE_DEAD_LETTER_TOPIC'
  readonly httpAddr: 'LAGSCALE_HTTP_ADDR'
}

/** Headers of a dead-lettered record, as pkg/handler writes them. */
export const Headers: {
  readonly originalTopic: 'lagscale.original.topic'
  readonly originalPartition: 'lagscale.original.partition'
  readonly originalOffset: 'lagscale.original.offset'
  readonly attempts: 'lagscale.attempts'
  readonly error: 'lagscale.error'
}

/** Exit code after a second signal. */
export const EXIT_FORCED: 2
export const DEFAULT_HTTP_ADDR: ':8080'
export const DEFAULTS: Readonly<Required<Pick<Options, 'concurrency' | 'maxPollRecords' | 'attempts' | 'initialBackoffMs' | 'maxBackoffMs' | 'shutdownTimeoutMs' | 'commitIntervalMs'>>>

/** @confluentinc/kafka-javascript, the client the SDK consumes with. */
export const Kafka: typeof KafkaModule
