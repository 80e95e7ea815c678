package nl.ketenbus.devstack;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

/**
 * Brings a Kafka cluster to the state a plan describes: SCRAM users, topics and ACLs.
 *
 * <p>aiokafka has no Admin API for SCRAM credentials or ACLs, so the stack runs this once per
 * start with the admin user: {@code java -cp <libs>/* nl.ketenbus.devstack.Provision
 * client.properties plan.txt}. Every step is idempotent (upserts, existing topics kept), so a
 * restart on the same data applies the same plan again without harm.
 *
 * <p>The plan has one instruction a line, fields separated by single spaces:
 * <pre>
 * user NAME PASSWORD
 * topic NAME PARTITIONS REPLICAS [key=value ...]
 * acl PRINCIPAL OPERATION TOPIC|GROUP|CLUSTER LITERAL|PREFIXED NAME
 * </pre>
 */
public final class Provision {
    private static final int SCRAM_ITERATIONS = 8192;
    private static final long TIMEOUT_SECONDS = 60;

    private Provision() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: Provision CLIENT_PROPERTIES PLAN");
            System.exit(2);
        }
        Properties client = new Properties();
        try (InputStream in = new FileInputStream(args[0])) {
            client.load(in);
        }
        Plan plan = Plan.read(Path.of(args[1]));
        try (Admin admin = Admin.create(client)) {
            upsertUsers(admin, plan.users);
            createTopics(admin, plan.topics);
            createAcls(admin, plan.acls);
        }
        System.out.printf(
            "provisioned %d users, %d topics, %d ACLs%n",
            plan.users.size(), plan.topics.size(), plan.acls.size());
    }

    private static void upsertUsers(Admin admin, Map<String, String> users) throws Exception {
        if (users.isEmpty()) {
            return;
        }
        List<UserScramCredentialAlteration> alterations = new ArrayList<>();
        for (Map.Entry<String, String> user : users.entrySet()) {
            alterations.add(new UserScramCredentialUpsertion(
                user.getKey(),
                new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
                user.getValue().getBytes(StandardCharsets.UTF_8)));
        }
        admin.alterUserScramCredentials(alterations).all().get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
    }

    private static void createTopics(Admin admin, List<NewTopic> topics) throws Exception {
        if (topics.isEmpty()) {
            return;
        }
        Map<String, KafkaFuture<Void>> created = admin.createTopics(topics).values();
        List<ConfigResource> existing = new ArrayList<>();
        for (Map.Entry<String, KafkaFuture<Void>> topic : created.entrySet()) {
            try {
                topic.getValue().get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
            } catch (java.util.concurrent.ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw e;
                }
                existing.add(new ConfigResource(ConfigResource.Type.TOPIC, topic.getKey()));
            }
        }
        // A topic that already existed gets the plan's settings too (retention can change
        // between releases); its partition count is left alone, it can only grow by hand.
        Map<ConfigResource, java.util.Collection<AlterConfigOp>> changes = new HashMap<>();
        for (NewTopic topic : topics) {
            ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic.name());
            if (!existing.contains(resource) || topic.configs() == null) {
                continue;
            }
            List<AlterConfigOp> ops = new ArrayList<>();
            for (Map.Entry<String, String> setting : topic.configs().entrySet()) {
                ops.add(new AlterConfigOp(
                    new ConfigEntry(setting.getKey(), setting.getValue()), AlterConfigOp.OpType.SET));
            }
            changes.put(resource, ops);
        }
        if (!changes.isEmpty()) {
            admin.incrementalAlterConfigs(changes).all().get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
        }
    }

    private static void createAcls(Admin admin, List<AclBinding> acls) throws Exception {
        if (!acls.isEmpty()) {
            admin.createAcls(acls).all().get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
        }
    }

    /** The instructions of a plan file, read whole before anything is changed. */
    private static final class Plan {
        final Map<String, String> users = new HashMap<>();
        final List<NewTopic> topics = new ArrayList<>();
        final List<AclBinding> acls = new ArrayList<>();

        static Plan read(Path path) throws IOException {
            Plan plan = new Plan();
            int number = 0;
            for (String line : Files.readAllLines(path, StandardCharsets.UTF_8)) {
                number++;
                if (line.isBlank() || line.startsWith("#")) {
                    continue;
                }
                String[] f = line.split(" ");
                try {
                    switch (f[0]) {
                        case "user" -> plan.users.put(f[1], f[2]);
                        case "topic" -> plan.topics.add(topic(f));
                        case "acl" -> plan.acls.add(acl(f));
                        default -> throw new IllegalArgumentException("unknown instruction " + f[0]);
                    }
                } catch (RuntimeException e) {
                    throw new IllegalArgumentException(
                        path + " line " + number + ": " + e.getMessage(), e);
                }
            }
            return plan;
        }

        private static NewTopic topic(String[] f) {
            NewTopic topic = new NewTopic(f[1], Integer.parseInt(f[2]), Short.parseShort(f[3]));
            Map<String, String> configs = new HashMap<>();
            for (int i = 4; i < f.length; i++) {
                String[] setting = f[i].split("=", 2);
                configs.put(setting[0], setting[1]);
            }
            return topic.configs(configs);
        }

        private static AclBinding acl(String[] f) {
            ResourceType type = ResourceType.valueOf(f[3].toUpperCase(Locale.ROOT));
            PatternType pattern = PatternType.valueOf(f[4].toUpperCase(Locale.ROOT));
            AclOperation operation = AclOperation.valueOf(f[2].toUpperCase(Locale.ROOT));
            String name = type == ResourceType.CLUSTER ? "kafka-cluster" : f[5];
            return new AclBinding(
                new ResourcePattern(type, name, pattern),
                new AccessControlEntry(f[1], "*", operation, AclPermissionType.ALLOW));
        }
    }
}
