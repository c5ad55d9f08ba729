// Statsig's Java server SDK (com.statsig:serversdk, Kotlin), unmodified, against a server: it
// downloads the ruleset from /v1/download_config_specs and the ID lists from
// /v1/get_id_lists, evaluates every case locally, then logs one event and flushes it to
// /v1/log_event.
//
// Usage: java -cp CLASSPATH SdkCheck.java BASE_URL SERVER_KEY CASES_FILE MARKER
// CASES_FILE holds [{user, names: [..]}]; prints {"initialized": bool, "answers": [...]}: per
// case null (a user the SDK refuses: no id at all) or, per name, [value, ruleID] (layers:
// [null, ruleID]).

import com.google.gson.Gson;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.reflect.TypeToken;
import com.statsig.sdk.GetExperimentOptions;
import com.statsig.sdk.GetFeatureGateOptions;
import com.statsig.sdk.GetLayerOptions;
import com.statsig.sdk.InitializationDetails;
import com.statsig.sdk.LogLevel;
import com.statsig.sdk.LoggerInterface;
import com.statsig.sdk.Statsig;
import com.statsig.sdk.StatsigOptions;
import com.statsig.sdk.StatsigUser;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

public class SdkCheck {
    private static final Gson GSON = new Gson();

    public static void main(String[] args) throws Exception {
        String base = args[0], key = args[1], casesFile = args[2], marker = args[3];
        StatsigOptions options = new StatsigOptions(base + "/v1");
        options.setInitTimeoutMs(30_000);
        options.setDisableDiagnostics(true);
        // The SDK's console messages go to stderr: stdout carries the answers.
        options.setCustomLogger(new LoggerInterface() {
            public void error(String message) { System.err.println("ERROR " + message); }
            public void warn(String message) { System.err.println("WARN " + message); }
            public void info(String message) { }
            public void debug(String message) { }
            public void setLogLevel(LogLevel level) { }
        });
        InitializationDetails details = Statsig.initializeAsync(key, options).get();
        List<Object> answers = new ArrayList<>();
        for (JsonElement element : JsonParser.parseString(Files.readString(Path.of(casesFile))).getAsJsonArray()) {
            JsonObject testCase = element.getAsJsonObject();
            StatsigUser user = user(testCase.getAsJsonObject("user"));
            if (user == null) {
                answers.add(null);
                continue;
            }
            List<Object> perName = new ArrayList<>();
            for (JsonElement nameElement : testCase.getAsJsonArray("names")) {
                String name = nameElement.getAsString();
                if (name.startsWith("layer_") && !name.contains("_exp_")) {
                    perName.add(Arrays.asList(null, Statsig.getLayerSync(user, name, new GetLayerOptions(true, null, null)).getRuleID()));
                } else if (name.startsWith("config_") || name.startsWith("exp_") || name.startsWith("layer_")) {
                    var config = Statsig.getExperimentSync(user, name, new GetExperimentOptions(true, null, null));
                    perName.add(Arrays.asList(config.getValue(), config.getRuleID()));
                } else {
                    var gate = Statsig.getFeatureGate(user, name, new GetFeatureGateOptions(true));
                    perName.add(Arrays.asList(gate.getValue(), gate.getRuleID()));
                }
            }
            answers.add(perName);
        }
        Statsig.logEvent(new StatsigUser("java-user"), "sdk_check_java", marker, Map.of("sdk", "java"));
        Statsig.shutdown();
        Map<String, Object> out = new HashMap<>();
        out.put("initialized", details != null && details.isSDKReady());
        out.put("answers", answers);
        System.out.println(new com.google.gson.GsonBuilder().serializeNulls().create().toJson(out));
        System.exit(0);
    }

    /** The case's user, or null when it has no id (the SDK refuses those). */
    private static StatsigUser user(JsonObject json) {
        String userID = json.has("userID") && json.get("userID").isJsonPrimitive() ? json.get("userID").getAsString() : "";
        Map<String, String> customIDs = json.has("customIDs") && json.get("customIDs").isJsonObject()
                ? GSON.fromJson(json.get("customIDs"), new TypeToken<Map<String, String>>() {}.getType())
                : Map.of();
        if (userID.isEmpty() && customIDs.isEmpty()) {
            return null;
        }
        StatsigUser user = new StatsigUser(userID, customIDs);
        user.setEmail(text(json, "email"));
        user.setIp(text(json, "ip"));
        user.setUserAgent(text(json, "userAgent"));
        user.setCountry(text(json, "country"));
        user.setLocale(text(json, "locale"));
        user.setAppVersion(text(json, "appVersion"));
        user.setCustom(map(json, "custom"));
        user.setPrivateAttributes(map(json, "privateAttributes"));
        return user;
    }

    private static String text(JsonObject json, String field) {
        JsonElement value = json.get(field);
        return value != null && value.isJsonPrimitive() ? value.getAsString() : null;
    }

    private static Map<String, Object> map(JsonObject json, String field) {
        JsonElement value = json.get(field);
        return value != null && value.isJsonObject()
                ? GSON.fromJson(value, new TypeToken<Map<String, Object>>() {}.getType())
                : null;
    }
}
