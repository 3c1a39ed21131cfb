"""Bundles the libkiln.so this package is built with (see kiln/_lib.py for the lookup order).

`pip install ./python` (offline: add --no-build-isolation) copies $KILN_LIBRARY, or else the
source tree's build/libkiln.so, into the installed package, so the installed kiln finds the
library it was built with wherever it is imported from. Without a built library the package is
pure Python and finds the library at run time ($KILN_LIBRARY, find_library("kiln")).
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))


def _built_library():
    env = os.environ.get("KILN_LIBRARY")
    if env:
        if not os.path.exists(env):
            raise SystemExit("KILN_LIBRARY=%s: no such file" % env)
        return env
    path = os.path.join(HERE, "..", "build", "libkiln.so")
    return path if os.path.exists(path) else None


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        lib = _built_library()
        if lib:
            dst = os.path.join(self.build_lib, "kiln", "libkiln.so")
            self.announce("bundling %s" % lib, level=2)
            shutil.copyfile(lib, dst)


class BinaryDistribution(Distribution):
    """A wheel with a bundled shared library is platform specific."""

    def has_ext_modules(self):
        return _built_library() is not None


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=BinaryDistribution)
