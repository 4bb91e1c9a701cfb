package dev.lagscale.example.streams;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.ListStreamsGroupOffsetsSpec;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.StreamsGroupDescription;
import org.apache.kafka.clients.admin.StreamsGroupMemberAssignment;
import org.apache.kafka.clients.admin.StreamsGroupMemberDescription;
import org.apache.kafka.clients.admin.StreamsGroupSubtopologyDescription;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;

/**
 * Prints what the reference Admin API reports of a streams group, as one
 * JSON object on stdout: describeStreamsGroups (state, epochs, the
 * topology's subtopologies, each member's tasks), listStreamsGroupOffsets
 * (the committed offsets) and, for every partition of the topology's
 * source topics, the read-committed end offset and the lag. The
 * compatibility suite compares it with what lagscale's lag engine reads;
 * the kafka-streams-groups.sh script is not in the Maven jars.
 *
 * <p>Usage: Describe &lt;bootstrap servers&gt; &lt;group&gt;
 */
public final class Describe {
    private Describe() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: Describe <bootstrap servers> <group>");
            System.exit(2);
        }
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        String group = args[1];
        try (Admin admin = Admin.create(p)) {
            StreamsGroupDescription d = admin.describeStreamsGroups(List.of(group)).all().get().get(group);
            Map<TopicPartition, OffsetAndMetadata> committed = admin
                    .listStreamsGroupOffsets(Map.of(group, new ListStreamsGroupOffsetsSpec()))
                    .partitionsToOffsetAndMetadata(group).get();

            TreeSet<String> sources = new TreeSet<>();
            TreeSet<String> repartition = new TreeSet<>();
            for (StreamsGroupSubtopologyDescription s : d.subtopologies()) {
                sources.addAll(s.sourceTopics());
                repartition.addAll(s.repartitionSourceTopics().keySet());
            }
            sources.addAll(repartition);
            Map<String, TopicDescription> topics = sources.isEmpty() ? Map.of()
                    : admin.describeTopics(sources).allTopicNames().get();
            Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
            for (TopicDescription t : topics.values()) {
                t.partitions().forEach(pi -> latest.put(new TopicPartition(t.name(), pi.partition()), OffsetSpec.latest()));
            }
            var ends = latest.isEmpty() ? Map.<TopicPartition, org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo>of()
                    : admin.listOffsets(latest, new ListOffsetsOptions(IsolationLevel.READ_COMMITTED)).all().get();

            StringBuilder b = new StringBuilder("{");
            field(b, "group", d.groupId()).append(',');
            field(b, "state", d.groupState().toString()).append(',');
            b.append("\"groupEpoch\":").append(d.groupEpoch()).append(',');
            b.append("\"targetAssignmentEpoch\":").append(d.targetAssignmentEpoch()).append(',');
            b.append("\"topologyEpoch\":").append(d.topologyEpoch()).append(',');
            b.append("\"subtopologies\":[");
            List<StreamsGroupSubtopologyDescription> subs = new ArrayList<>(d.subtopologies());
            subs.sort((x, y) -> x.subtopologyId().compareTo(y.subtopologyId()));
            for (int i = 0; i < subs.size(); i++) {
                StreamsGroupSubtopologyDescription s = subs.get(i);
                b.append(i > 0 ? "," : "").append('{');
                field(b, "id", s.subtopologyId()).append(',');
                b.append("\"sourceTopics\":").append(strings(new TreeSet<>(s.sourceTopics()))).append(',');
                b.append("\"repartitionSourceTopics\":").append(strings(new TreeSet<>(s.repartitionSourceTopics().keySet())));
                b.append('}');
            }
            b.append("],\"members\":[");
            List<StreamsGroupMemberDescription> members = new ArrayList<>(d.members());
            members.sort((x, y) -> x.memberId().compareTo(y.memberId()));
            for (int i = 0; i < members.size(); i++) {
                StreamsGroupMemberDescription m = members.get(i);
                StreamsGroupMemberAssignment a = m.assignment();
                b.append(i > 0 ? "," : "").append('{');
                field(b, "memberId", m.memberId()).append(',');
                field(b, "processId", m.processId()).append(',');
                field(b, "clientId", m.clientId()).append(',');
                b.append("\"memberEpoch\":").append(m.memberEpoch()).append(',');
                b.append("\"active\":").append(strings(tasks(a.activeTasks()))).append(',');
                b.append("\"standby\":").append(strings(tasks(a.standbyTasks()))).append(',');
                b.append("\"warmup\":").append(strings(tasks(a.warmupTasks())));
                b.append('}');
            }
            b.append("],\"partitions\":[");
            List<TopicPartition> tps = new ArrayList<>(latest.keySet());
            tps.sort((x, y) -> x.topic().equals(y.topic()) ? Integer.compare(x.partition(), y.partition()) : x.topic().compareTo(y.topic()));
            for (int i = 0; i < tps.size(); i++) {
                TopicPartition tp = tps.get(i);
                long end = ends.get(tp).offset();
                OffsetAndMetadata c = committed.get(tp);
                long at = c == null ? -1 : c.offset();
                b.append(i > 0 ? "," : "").append('{');
                field(b, "topic", tp.topic()).append(',');
                b.append("\"partition\":").append(tp.partition()).append(',');
                b.append("\"committed\":").append(at).append(',');
                b.append("\"end\":").append(end).append(',');
                b.append("\"repartition\":").append(repartition.contains(tp.topic()));
                b.append('}');
            }
            b.append("]}");
            System.out.println(b);
        }
    }

    /** Tasks as "subtopology_partition", sorted. */
    private static TreeSet<String> tasks(Collection<StreamsGroupMemberAssignment.TaskIds> ids) {
        TreeSet<String> out = new TreeSet<>();
        for (StreamsGroupMemberAssignment.TaskIds t : ids) {
            for (Integer part : t.partitions()) {
                out.add(t.subtopologyId() + "_" + part);
            }
        }
        return out;
    }

    private static StringBuilder field(StringBuilder b, String name, String value) {
        return b.append('"').append(name).append("\":").append(quote(value));
    }

    private static String strings(Collection<String> values) {
        StringBuilder b = new StringBuilder("[");
        int i = 0;
        for (String v : values) {
            b.append(i++ > 0 ? "," : "").append(quote(v));
        }
        return b.append(']').toString();
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
