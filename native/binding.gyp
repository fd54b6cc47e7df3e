{
  "targets": [
    {
      "target_name": "c2f_native",
      "sources": ["src/kernels.c"],
      "cflags": ["-O3", "-march=native", "-fopenmp", "-std=c11", "-ffp-contract=off"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-lopenblas", "-lmvec", "-fopenmp"],
      "include_dirs": ["/usr/include/x86_64-linux-gnu/openblas-pthread"]
    }
  ]
}
