{
  "targets": [
    {
      "target_name": "sqap_native",
      "sources": [
        "native/binding.cc",
        "native/dispatch.cc",
        "native/threadpool.cc",
        "native/generic/linear.cc",
        "native/generic/attention.cc",
        "native/generic/attention_scores.cc",
        "native/generic/norm.cc",
        "native/generic/elementwise.cc",
        "native/generic/grad.cc",
        "native/grad_binding.cc",
        "native/arch/avx2/kernels.cc",
        "native/arch/avx2/activations.cc",
        "native/arch/avx512/kernels.cc",
        "native/arch/avx512/bf16dot.cc",
        "native/arch/avx2/int.cc",
        "native/arch/avxvnni/int.cc",
        "native/arch/avx512/int.cc",
        "native/generic/int_linear.cc",
        "native/generic/int_ops.cc",
        "native/generic/int_attention.cc",
        "native/generic/membench.cc",
        "native/generic/base64.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-ffp-contract=off", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_CPLUSPLUSFLAGS": ["-O3"]
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17"] }
      }
    }
  ]
}
