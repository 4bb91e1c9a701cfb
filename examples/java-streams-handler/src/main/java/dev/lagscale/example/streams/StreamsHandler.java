package dev.lagscale.example.streams;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;

/**
 * A lagscale handler written with Kafka Streams, for an EventConsumer with
 * groupType Streams. It runs on the KIP-1071 streams rebalance protocol
 * (group.protocol=streams): the broker assigns the tasks, and lagscale reads
 * the topology, the tasks and the lag with StreamsGroupDescribe.
 *
 * <p>The topology counts records by their value: the input is re-keyed by
 * value, which makes Kafka Streams write it to a repartition topic, and a
 * second subtopology counts per key from there into the output topic. So
 * the group has two subtopologies, and lag on two kinds of topic: the input
 * (work from outside) and the repartition topic (work the application made
 * itself).
 *
 * <p>Configured from the handler contract: KAFKA_BOOTSTRAP_SERVERS, the
 * security settings, KAFKA_CONSUMER_GROUP as application.id (a streams
 * group's ID is the application ID), KAFKA_AUTO_OFFSET_RESET, and
 * KAFKA_TOPICS for the input when it is set. The application's own
 * settings: STREAMS_INPUT_TOPIC (the input when KAFKA_TOPICS is empty,
 * which groupType Streams allows), STREAMS_OUTPUT_TOPIC (default
 * input + "-counts"), STREAMS_NUM_THREADS (num.stream.threads, default 1),
 * STREAMS_STATE_DIR (default a fresh temporary directory), STREAMS_WORK_MS
 * (simulated work per record in each subtopology, default 0, so that a
 * burst builds a backlog that more instances drain faster, as with a
 * CPU-bound application).
 *
 * <p>processing.guarantee is exactly_once_v2, so every input record is
 * counted once in the output. On SIGTERM it closes Kafka Streams, which
 * commits the open transactions and leaves the group, and exits 0.
 */
public final class StreamsHandler {
    private final Map<String, String> env;

    private StreamsHandler(Map<String, String> env) {
        this.env = env;
    }

    public static void main(String[] args) {
        try {
            System.exit(new StreamsHandler(System.getenv()).run());
        } catch (IllegalArgumentException | IOException e) {
            System.err.println("configuration: " + e.getMessage());
            System.exit(1);
        }
    }

    private String required(String name) {
        String v = env.getOrDefault(name, "").trim();
        if (v.isEmpty()) {
            throw new IllegalArgumentException(name + " is required (the lagscale handler contract sets it)");
        }
        return v;
    }

    /** The Kafka Streams configuration from the handler contract. */
    Properties config() throws IOException {
        Properties p = new Properties();
        String groupType = env.getOrDefault("KAFKA_GROUP_TYPE", "streams").trim();
        if (!"streams".equals(groupType)) {
            throw new IllegalArgumentException("KAFKA_GROUP_TYPE=\"" + groupType
                    + "\": this is a Kafka Streams application, set the EventConsumer's spec.groupType to Streams");
        }
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, required("KAFKA_CONSUMER_GROUP"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, required("KAFKA_BOOTSTRAP_SERVERS"));
        p.put(StreamsConfig.GROUP_PROTOCOL_CONFIG, "streams");
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, env.getOrDefault("STREAMS_NUM_THREADS", "1"));
        String stateDir = env.getOrDefault("STREAMS_STATE_DIR", "");
        if (stateDir.isEmpty()) {
            stateDir = Files.createTempDirectory("lagscale-streams-").toString();
        }
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        // Commit often, so that the group's committed offsets (what
        // lagscale reads as lag) follow the processing closely.
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "1000");
        String reset = env.getOrDefault("KAFKA_AUTO_OFFSET_RESET", "latest").trim();
        if (!reset.isEmpty()) {
            p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), reset);
        }
        connection(p);
        return p;
    }

    /** Security settings, as the java-handler example reads them. */
    private void connection(Properties p) throws IOException {
        String protocol = env.getOrDefault("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").trim();
        if (protocol.isEmpty()) {
            protocol = "PLAINTEXT";
        }
        if (!List.of("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL").contains(protocol)) {
            throw new IllegalArgumentException("KAFKA_SECURITY_PROTOCOL=\"" + protocol + "\": expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL");
        }
        p.put("security.protocol", protocol);
        if (protocol.startsWith("SASL_")) {
            String mechanism = required("KAFKA_SASL_MECHANISM");
            String module = switch (mechanism) {
                case "PLAIN" -> "org.apache.kafka.common.security.plain.PlainLoginModule";
                case "SCRAM-SHA-256", "SCRAM-SHA-512" -> "org.apache.kafka.common.security.scram.ScramLoginModule";
                default -> throw new IllegalArgumentException("KAFKA_SASL_MECHANISM=\"" + mechanism + "\": expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
            };
            p.put("sasl.mechanism", mechanism);
            p.put("sasl.jaas.config", module + " required username=\"" + jaasQuote(required("KAFKA_SASL_USERNAME"))
                    + "\" password=\"" + jaasQuote(env.getOrDefault("KAFKA_SASL_PASSWORD", "")) + "\";");
        }
        if (protocol.endsWith("SSL")) {
            String ca = env.getOrDefault("KAFKA_TLS_CA_FILE", "");
            if (!ca.isEmpty()) {
                p.put("ssl.truststore.type", "PEM");
                p.put("ssl.truststore.location", ca);
            }
            String cert = env.getOrDefault("KAFKA_TLS_CERT_FILE", "");
            String key = env.getOrDefault("KAFKA_TLS_KEY_FILE", "");
            if (cert.isEmpty() != key.isEmpty()) {
                throw new IllegalArgumentException("KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE go together");
            }
            if (!cert.isEmpty()) {
                p.put("ssl.keystore.type", "PEM");
                p.put("ssl.keystore.certificate.chain", Files.readString(Path.of(cert)));
                p.put("ssl.keystore.key", Files.readString(Path.of(key)));
            }
            if ("true".equals(env.getOrDefault("KAFKA_TLS_INSECURE_SKIP_VERIFY", ""))) {
                // Host name verification only; the CA must still sign.
                p.put("ssl.endpoint.identification.algorithm", "");
            }
        }
    }

    private static String jaasQuote(String s) {
        return s.replace("\\", "\\\\").replace("\"", "\\\"");
    }

    /** The input topic: KAFKA_TOPICS (one topic) or STREAMS_INPUT_TOPIC. */
    String inputTopic() {
        String topics = env.getOrDefault("KAFKA_TOPICS", "").trim();
        if (topics.isEmpty()) {
            return required("STREAMS_INPUT_TOPIC");
        }
        if (topics.contains(",")) {
            throw new IllegalArgumentException("KAFKA_TOPICS=\"" + topics + "\": this topology reads one input topic");
        }
        return topics;
    }

    /** STREAMS_WORK_MS: simulated work per record in each subtopology. */
    long workMs() {
        String v = env.getOrDefault("STREAMS_WORK_MS", "").trim();
        if (v.isEmpty()) {
            return 0;
        }
        try {
            long ms = Long.parseLong(v);
            if (ms >= 0) {
                return ms;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException("STREAMS_WORK_MS=\"" + v + "\": expected a non-negative integer");
    }

    private static void work(long ms) {
        if (ms <= 0) {
            return;
        }
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * Two subtopologies: re-key by value (a repartition), then count per
     * key into the output topic; each spends workMs on every record.
     */
    static Topology topology(String input, String output, long workMs) {
        StreamsBuilder b = new StreamsBuilder();
        b.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .peek((k, v) -> work(workMs))
                .map((k, v) -> KeyValue.pair(v == null ? "" : v, v))
                .repartition(Repartitioned.<String, String>as("by-value").withKeySerde(Serdes.String()).withValueSerde(Serdes.String()))
                .peek((k, v) -> work(workMs))
                .groupByKey(Grouped.<String, String>as("by-value-grouped").withKeySerde(Serdes.String()).withValueSerde(Serdes.String()))
                .count()
                .toStream()
                .mapValues(Object::toString)
                .to(output, Produced.with(Serdes.String(), Serdes.String()));
        return b.build();
    }

    private int run() throws IOException {
        Properties config = config();
        String input = inputTopic();
        String output = env.getOrDefault("STREAMS_OUTPUT_TOPIC", "").trim();
        if (output.isEmpty()) {
            output = input + "-counts";
        }
        KafkaStreams streams = new KafkaStreams(topology(input, output, workMs()), config);
        CountDownLatch closed = new CountDownLatch(1);
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("stream thread failed: " + e);
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        // SIGTERM: close Kafka Streams (commit, leave the group), then exit
        // 0; a JVM ended by the signal itself would exit 143.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            boolean done = streams.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                    .withTimeout(Duration.ofSeconds(30)));
            System.err.println(done ? "Drained, exiting" : "Close timed out, exiting");
            closed.countDown();
            Runtime.getRuntime().halt(done ? 0 : 1);
        }));
        streams.start();
        System.err.println("Started application " + config.getProperty(StreamsConfig.APPLICATION_ID_CONFIG)
                + " reading " + input + ", writing " + output);
        try {
            while (!closed.await(1, TimeUnit.SECONDS)) {
                if (streams.state() == KafkaStreams.State.ERROR || streams.state() == KafkaStreams.State.NOT_RUNNING) {
                    System.err.println("Kafka Streams stopped in state " + streams.state());
                    return 1;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return 0;
    }
}
