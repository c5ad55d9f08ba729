// Statsig's Go server SDK (github.com/statsig-io/go-sdk), unmodified, against gatehouse: it
// downloads the ruleset from /v1/download_config_specs and the ID lists from
// /v1/get_id_lists, evaluates every case locally, then logs one event and flushes it to
// /v1/log_event.
//
// Usage: go run . BASE_URL SERVER_KEY CASES_FILE MARKER
// CASES_FILE holds [{user, names: [..]}]; prints {"initialized": bool, "answers": [...]}:
// per case null (a user the SDK's User type cannot hold, such as a number as userID, or one
// it refuses: no id at all) or,
// per name, [value, ruleID] (layers: [null, ruleID]).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	statsig "github.com/statsig-io/go-sdk"
)

type testCase struct {
	User  json.RawMessage `json:"user"`
	Names []string        `json:"names"`
}

func main() {
	base, key, casesFile, marker := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	raw, err := os.ReadFile(casesFile)
	if err != nil {
		panic(err)
	}
	var cases []testCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		panic(err)
	}
	client, details := statsig.NewClientWithDetails(key, &statsig.Options{
		API:                base + "/v1",
		DisableCDN:         true,
		IDListSyncInterval: time.Second,
		InitTimeout:        30 * time.Second,
		OutputLoggerOptions: statsig.OutputLoggerOptions{
			LogCallback: func(string, error) {},
		},
		StatsigLoggerOptions: statsig.StatsigLoggerOptions{DisableInitDiagnostics: true},
	})
	answers := make([]interface{}, len(cases))
	for i, c := range cases {
		var user statsig.User
		// The SDK refuses users with no id at all, as the legacy Python SDK does.
		if json.Unmarshal(c.User, &user) != nil || (user.UserID == "" && len(user.CustomIDs) == 0) {
			continue
		}
		perName := make([][2]interface{}, len(c.Names))
		for j, name := range c.Names {
			switch {
			case strings.HasPrefix(name, "layer_") && !strings.Contains(name, "_exp_"):
				layer := client.GetLayerWithExposureLoggingDisabled(user, name)
				perName[j] = [2]interface{}{nil, layer.RuleID}
			case strings.HasPrefix(name, "config_") || strings.HasPrefix(name, "exp_") || strings.HasPrefix(name, "layer_"):
				config := client.GetExperimentWithExposureLoggingDisabled(user, name)
				perName[j] = [2]interface{}{config.Value, config.RuleID}
			default:
				gate := client.GetGateWithExposureLoggingDisabled(user, name)
				perName[j] = [2]interface{}{gate.Value, gate.RuleID}
			}
		}
		answers[i] = perName
	}
	client.LogEvent(statsig.Event{
		EventName: "sdk_check_go",
		User:      statsig.User{UserID: "go-user"},
		Value:     marker,
		Metadata:  map[string]string{"sdk": "go"},
	})
	client.Shutdown()
	out, err := json.Marshal(map[string]interface{}{"initialized": details.Success, "answers": answers})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))
}
