//go:build !goexperiment.jsonv2

package strictjson_test

// jsonV2 reports whether encoding/json is built on its v2 implementation
// (GOEXPERIMENT=jsonv2), whose syntax errors read differently.
const jsonV2 = false
