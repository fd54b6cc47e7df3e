{
  "targets": [
    {
      "target_name": "c2f_native",
      "sources": ["src/kernels.c"],
      "cflags": ["-O3", "-march=native", "-fopenmp", "-std=c11"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-lopenblas", "-fopenmp"],
      "include_dirs": ["/usr/include/x86_64-linux-gnu/openblas-pthread"]
    }
  ]
}
