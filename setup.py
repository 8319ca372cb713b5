"""Perceiver IO in JAX/Haiku."""
import setuptools

setuptools.setup(
    name='perceiver-io',
    version='0.1.0',
    description='Perceiver IO (Jaegle et al., arXiv 2107.14795) in JAX/Haiku.',
    packages=setuptools.find_packages(include=['perceiver', 'perceiver.*']),
    # The six released architectures (perceiver/release_specs/*.json) are
    # read at run time by the model card, the recipes and the HF export.
    package_data={'perceiver': ['release_specs/*.json']},
    include_package_data=False,
    python_requires='>=3.11',
    # Every distribution perceiver/ imports (tests/test_packaging.py checks),
    # but TensorFlow: TFDS needs one, and which (tensorflow, tensorflow-cpu,
    # a TPU build) is the user's choice, as TFDS leaves it; requirements.txt
    # pins tensorflow-cpu. Exact versions that work together are in
    # requirements.txt.
    install_requires=[
        'absl-py', 'av', 'chex', 'dm-haiku', 'etils', 'jax', 'jaxlib', 'jmp',
        'ml-collections', 'ml-dtypes', 'numpy', 'optax', 'orbax-checkpoint',
        'scikit-image', 'sentencepiece', 'tensorflow-datasets',
    ],
    # Export to / import from Hugging Face transformers (perceiver/hf).
    # torch is pinned to the release whose CPU wheel this project's machines
    # hold; see requirements-hf.txt.
    extras_require={
        'hf': ['torch==2.13.0', 'transformers==5.23.0', 'safetensors'],
    },
)
