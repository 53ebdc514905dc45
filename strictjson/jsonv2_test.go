//go:build goexperiment.jsonv2

package strictjson_test

const jsonV2 = true
