{
  "targets": [
    {
      "target_name": "c2f_mpi",
      "sources": ["src/mpi.c"],
      "cflags": ["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(mpicc --showme:compile)"],
      "libraries": ["<!@(mpicc --showme:link)", "-ldl"]
    }
  ]
}
