"""Build the Cython/C extensions; OpenMP when the compiler has it, serial otherwise."""
import glob
import os
import sys
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def openmp_flags(compiler):
    """(compile, link) flags that enable OpenMP with this compiler, or None."""
    if os.environ.get("NEWTONCNN_NO_OPENMP"):
        return None
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for cflags, lflags in candidates:
        if _compiles(compiler, "#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n",
                     cflags, lflags):
            return cflags, lflags
    return None


def _compiles(compiler, source, cflags, lflags):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp_test.c")
        with open(src, "w") as f:
            f.write(source)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
            compiler.link_executable(objs, os.path.join(tmp, "omp_test"), extra_postargs=lflags)
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    def build_extensions(self):
        flags = openmp_flags(self.compiler)
        if flags is None:
            print("newtoncnn: building without OpenMP (kernels run on one thread)")
        # No debug information unless CFLAGS asks for it (tools/asan.sh does): Python's own
        # build flags often carry -g, which made the extension 7 MB instead of 1.
        debug = "-g" in os.environ.get("CFLAGS", "").split()
        for ext in self.extensions:
            if self.compiler.compiler_type != "msvc":
                ext.extra_compile_args += ["-O3", "-std=c99"] if ext.language != "c++" else ["-O3"]
                ext.extra_compile_args += [] if debug else ["-g0"]
            if flags is not None:
                ext.extra_compile_args += flags[0]
                ext.extra_link_args += flags[1]
        super().build_extensions()


common = dict(
    include_dirs=["src_c", np.get_include()],
    depends=sorted(glob.glob("src_c/*.h")),
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
)
# One extension holds every C file (its .pyx includes _blas.pxi and _conv.pxi), so the
# kernels' process-wide state (the SIMD switch, the GEMM engine) exists once.
common["depends"] += sorted(glob.glob("newtoncnn/*.pxi")) + ["newtoncnn/_ckernels.pxd"]
extensions = [
    Extension("newtoncnn._kernels",
              ["newtoncnn/_kernels.pyx", "src_c/kernels.c", "src_c/pool_avx512.c", "src_c/pool_avx2.c", "src_c/conv_avx2.c",
               "src_c/sgemm.c"],
              **common),
]

setup(
    ext_modules=cythonize(extensions, language_level=3),
    cmdclass={"build_ext": BuildExt},
)
