"""hsi_jax: hyperspectral image classification in JAX/Flax (DA-IMRN, SSAN) on leakage-free splits."""

from setuptools import find_packages, setup

setup(
    name="hsi_jax",
    version="0.1.0",
    description="Hyperspectral image classification in JAX/Flax: DA-IMRN, SSAN, leakage-free splits.",
    python_requires=">=3.10",
    packages=find_packages(include=["hsi_jax", "hsi_jax.*"]),
    package_data={"hsi_jax.data": ["bundled/*.mat"]},
    include_package_data=True,
    install_requires=[
        # The known-good set on Python 3.11 (docs/design.md, "Versions"); newer jax/flax pairs are
        # not all compatible.
        "jax==0.10.2",
        "jaxlib==0.10.2",
        "flax==0.12.8",
        "optax==0.2.8",
        "orbax-checkpoint==0.12.8",
        "ml-collections==1.1.0",
        "absl-py>=2.1",
        "numpy>=1.26",
        "scipy>=1.11",
        "h5py>=3.10",
        "matplotlib>=3.8",
        # GeoTIFF and (through GDAL's ENVI driver) ENVI cubes, class maps back as GeoTIFF; its
        # wheels carry GDAL.
        "rasterio>=1.4",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.5", "scikit-learn>=1.4", "ruff==0.17.6"],
        "dev": ["pytest>=8", "pytest-xdist>=3.5", "scikit-learn>=1.4", "ruff==0.17.6",
                "pre-commit>=3"],
        "baselines": ["scikit-learn>=1.4"],
        "gpu": ["jax[cuda12]==0.10.2"],
    },
)
