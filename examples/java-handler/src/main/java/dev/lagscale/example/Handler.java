package dev.lagscale.example;

import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * An example lagscale handler on the reference Java client: plain
 * kafka-clients, no framework. It reads the handler contract from the
 * environment (pkg/contract lists the variables), handles each record,
 * commits only what it handled, dead-letters records that fail every
 * attempt when LAGSCALE_DEAD_LETTER_TOPIC is set, and on SIGTERM finishes
 * the record in hand, commits, leaves the group and exits 0. A second
 * SIGTERM exits at once with code 2.
 *
 * <p>Simulated work, as in the Go and Node examples: WORK_MS per record;
 * FAIL_EVERY=N makes every record whose offset+1 is a multiple of N fail;
 * HANDLED_LOG appends "topic partition offset" per handled record.
 */
public final class Handler {
    private static final int ATTEMPTS = 3;

    private final Map<String, String> env;
    private final long workMs;
    private final long failEvery;
    private final String deadLetterTopic;
    private final OutputStream handledLog;
    private volatile boolean stopping;
    private final AtomicInteger signals = new AtomicInteger();
    private int handled, failed, deadLettered;

    private Handler(Map<String, String> env) throws IOException {
        this.env = env;
        this.workMs = nonNegative("WORK_MS");
        this.failEvery = nonNegative("FAIL_EVERY");
        this.deadLetterTopic = env.getOrDefault("LAGSCALE_DEAD_LETTER_TOPIC", "").trim();
        String log = env.getOrDefault("HANDLED_LOG", "");
        this.handledLog = log.isEmpty() ? null : new FileOutputStream(log, true);
    }

    public static void main(String[] args) {
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        try {
            System.exit(new Handler(System.getenv()).run());
        } catch (IllegalArgumentException | IOException e) {
            System.err.println(e.getMessage());
            System.exit(1);
        }
    }

    private long nonNegative(String name) {
        String v = env.getOrDefault(name, "");
        if (v.isEmpty()) {
            return 0;
        }
        try {
            long n = Long.parseLong(v);
            if (n >= 0) {
                return n;
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new IllegalArgumentException(name + "=\"" + v + "\": expected a non-negative integer");
    }

    private String required(String name) {
        String v = env.getOrDefault(name, "").trim();
        if (v.isEmpty()) {
            throw new IllegalArgumentException(name + " is required (the lagscale handler contract sets it)");
        }
        return v;
    }

    /** Connection settings shared by the consumer and the dead-letter producer. */
    private Properties connection() throws IOException {
        Properties p = new Properties();
        p.put("bootstrap.servers", required("KAFKA_BOOTSTRAP_SERVERS"));
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
                // The client key must be an unencrypted PKCS#8 PEM key.
                p.put("ssl.keystore.type", "PEM");
                p.put("ssl.keystore.certificate.chain", Files.readString(Path.of(cert)));
                p.put("ssl.keystore.key", Files.readString(Path.of(key)));
            }
            if ("true".equals(env.getOrDefault("KAFKA_TLS_INSECURE_SKIP_VERIFY", ""))) {
                // The Java client has no switch to trust any certificate:
                // this turns off host name verification only, and the CA
                // must still sign the brokers' certificates.
                p.put("ssl.endpoint.identification.algorithm", "");
            }
        }
        return p;
    }

    private static String jaasQuote(String s) {
        return s.replace("\\", "\\\\").replace("\"", "\\\"");
    }

    private int run() throws IOException {
        List<String> topics = new ArrayList<>();
        for (String t : required("KAFKA_TOPICS").split(",")) {
            if (!t.isBlank()) {
                topics.add(t.trim());
            }
        }
        String reset = env.getOrDefault("KAFKA_AUTO_OFFSET_RESET", "latest").trim();
        if (!reset.equals("latest") && !reset.equals("earliest")) {
            throw new IllegalArgumentException("KAFKA_AUTO_OFFSET_RESET=\"" + reset + "\": expected latest or earliest");
        }
        Properties cp = connection();
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, required("KAFKA_CONSUMER_GROUP"));
        cp.put(ConsumerConfig.CLIENT_ID_CONFIG, env.getOrDefault("LAGSCALE_CONSUMER", "java-handler"));
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, reset);
        // Records of aborted transactions are never handed to the handler.
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "500");
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

        KafkaProducer<byte[], byte[]> producer = null;
        if (!deadLetterTopic.isEmpty()) {
            Properties pp = connection();
            pp.put(ProducerConfig.ACKS_CONFIG, "all");
            pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
            pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
            producer = new KafkaProducer<>(pp);
        }

        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp);
        CountDownLatch finished = new CountDownLatch(1);
        // The first SIGTERM (or SIGINT) wakes the poll; the loop finishes the
        // record in hand, commits and leaves. A second exits at once.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopping = true;
            consumer.wakeup();
            try {
                finished.await();
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
            // A JVM ended by a signal exits 143; a drained handler exits 0.
            Runtime.getRuntime().halt(0);
        }));
        installSecondSignalExit();

        Map<TopicPartition, OffsetAndMetadata> pending = new HashMap<>();
        Set<TopicPartition> stalled = new HashSet<>();
        consumer.subscribe(topics, new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                // Hand over what was handled: the next owner starts there.
                commit(consumer, pending);
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                stalled.removeAll(parts);
            }
        });
        try {
            while (!stopping) {
                ConsumerRecords<byte[], byte[]> records;
                try {
                    records = consumer.poll(Duration.ofMillis(500));
                } catch (WakeupException e) {
                    break;
                }
                batch:
                for (TopicPartition tp : records.partitions()) {
                    for (ConsumerRecord<byte[], byte[]> r : records.records(tp)) {
                        if (stopping) {
                            break batch; // unhandled records stay uncommitted
                        }
                        if (stalled.contains(tp)) {
                            break;
                        }
                        if (!settle(r, producer)) {
                            // No dead-letter topic: stop the partition at
                            // this record, which stays uncommitted.
                            stalled.add(tp);
                            consumer.pause(List.of(tp));
                            consumer.seek(tp, r.offset());
                            System.err.println("Partition stopped: record failed every attempt and no dead-letter topic is configured topic="
                                    + tp.topic() + " partition=" + tp.partition() + " offset=" + r.offset());
                            break;
                        }
                        pending.put(tp, new OffsetAndMetadata(r.offset() + 1));
                    }
                }
                commit(consumer, pending);
            }
            commit(consumer, pending);
        } finally {
            try {
                consumer.close(); // leaves the group
            } catch (WakeupException ignored) {
                consumer.close();
            }
            if (producer != null) {
                producer.close();
            }
            if (handledLog != null) {
                handledLog.close();
            }
            System.out.println("summary handled=" + handled + " failed=" + failed + " deadLettered=" + deadLettered);
            System.out.flush();
            finished.countDown();
        }
        return 0;
    }

    private static void commit(KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, OffsetAndMetadata> pending) {
        if (pending.isEmpty()) {
            return;
        }
        Map<TopicPartition, OffsetAndMetadata> owned = new HashMap<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : pending.entrySet()) {
            if (consumer.assignment().contains(e.getKey())) {
                owned.put(e.getKey(), e.getValue());
            }
        }
        pending.clear();
        if (owned.isEmpty()) {
            return;
        }
        try {
            consumer.commitSync(owned);
        } catch (WakeupException e) {
            consumer.commitSync(owned); // the wakeup was for poll; commit still
        } catch (RuntimeException e) {
            System.err.println("Committing offsets failed: " + e);
        }
    }

    /** settle handles r with retries; true when r may be committed. */
    private boolean settle(ConsumerRecord<byte[], byte[]> r, KafkaProducer<byte[], byte[]> producer) {
        RuntimeException err = null;
        for (int attempt = 1; attempt <= ATTEMPTS; attempt++) {
            try {
                handle(r);
                handled++;
                return true;
            } catch (RuntimeException e) {
                err = e;
                if (attempt < ATTEMPTS) {
                    sleep(50L << (attempt - 1));
                }
            }
        }
        failed++;
        if (producer == null) {
            return false;
        }
        ProducerRecord<byte[], byte[]> dl = new ProducerRecord<>(deadLetterTopic, null, r.key(), r.value());
        for (Header h : r.headers()) {
            dl.headers().add(h);
        }
        dl.headers().add("lagscale.original.topic", r.topic().getBytes(StandardCharsets.UTF_8));
        dl.headers().add("lagscale.original.partition", Integer.toString(r.partition()).getBytes(StandardCharsets.UTF_8));
        dl.headers().add("lagscale.original.offset", Long.toString(r.offset()).getBytes(StandardCharsets.UTF_8));
        dl.headers().add("lagscale.attempts", Integer.toString(ATTEMPTS).getBytes(StandardCharsets.UTF_8));
        dl.headers().add("lagscale.error", String.valueOf(err.getMessage()).getBytes(StandardCharsets.UTF_8));
        try {
            producer.send(dl).get();
        } catch (Exception e) {
            System.err.println("Dead-lettering failed, the record stays uncommitted: " + e);
            return false;
        }
        deadLettered++;
        return true;
    }

    /** handle is the simulated business logic. */
    private void handle(ConsumerRecord<byte[], byte[]> r) {
        if (failEvery > 0 && (r.offset() + 1) % failEvery == 0) {
            throw new IllegalStateException("simulated poison record");
        }
        if (workMs > 0) {
            sleep(workMs);
        }
        if (handledLog != null) {
            try {
                handledLog.write((r.topic() + " " + r.partition() + " " + r.offset() + "\n").getBytes(StandardCharsets.UTF_8));
            } catch (IOException e) {
                throw new IllegalStateException("writing HANDLED_LOG: " + e.getMessage(), e);
            }
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * While the shutdown hook drains, a second SIGTERM or SIGINT exits at
     * once with code 2, committing nothing more. sun.misc.Signal is the
     * JDK's only way to see a signal the shutdown hook already took.
     */
    private void installSecondSignalExit() {
        for (String name : Arrays.asList("TERM", "INT")) {
            try {
                sun.misc.Signal sig = new sun.misc.Signal(name);
                sun.misc.SignalHandler previous = sun.misc.Signal.handle(sig, s -> { });
                sun.misc.Signal.handle(sig, s -> {
                    if (signals.incrementAndGet() > 1) {
                        System.err.println("Second signal, exiting without committing unfinished work");
                        Runtime.getRuntime().halt(2);
                    }
                    previous.handle(s); // the JVM's own: runs the shutdown hook
                });
            } catch (IllegalArgumentException ignored) {
                // the signal is not available here
            }
        }
    }
}
