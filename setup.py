"""Perceiver IO in JAX/Haiku."""
import setuptools

setuptools.setup(
    name='perceiver-io',
    version='0.1.0',
    description='Perceiver IO (Jaegle et al., arXiv 2107.14795) in JAX/Haiku.',
    packages=setuptools.find_packages(include=['perceiver', 'perceiver.*']),
    python_requires='>=3.11',
    install_requires=[
        'jax', 'jaxlib', 'dm-haiku', 'optax', 'chex', 'ml-collections',
        'absl-py', 'orbax-checkpoint', 'numpy',
    ],
)
