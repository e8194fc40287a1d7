{
  "targets": [
    {
      "target_name": "temper_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/alloc.cc",
        "native/src/threads.cc",
        "native/src/elementwise.cc",
        "native/src/copy.cc",
        "native/src/reduce.cc",
        "native/src/matmul.cc",
        "native/src/softmax.cc",
        "native/src/index.cc",
        "native/src/sort.cc",
        "native/src/random.cc",
        "native/src/norm.cc",
        "native/src/rotary.cc",
        "native/src/attention.cc",
        "native/src/cross_entropy.cc",
        "native/src/optim.cc",
        "native/src/swiglu.cc",
        "native/src/dtype_dispatch.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_CPP_EXCEPTIONS_ALL", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-O2"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-O2"],
      "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-fno-math-errno", "-fexceptions", "-Wall", "-Wno-unknown-pragmas"],
      "conditions": [
        ["OS=='linux'", {
          "variables": { "multiarch": "<!(gcc -print-multiarch)" },
          "libraries": [
            "-L/usr/lib/<(multiarch)/openblas-openmp", "-Wl,-rpath,/usr/lib/<(multiarch)/openblas-openmp", "-lopenblas", "-fopenmp"
          ],
          "include_dirs": ["/usr/include/<(multiarch)/openblas-openmp"]
        }],
        ["OS=='mac'", {
          "defines": ["TEMPER_ACCELERATE"],
          "libraries": ["-framework Accelerate", "-lomp"],
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-O3", "-Xpreprocessor", "-fopenmp"]
          }
        }]
      ]
    }
  ]
}
