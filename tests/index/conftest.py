"""One FAISS thread in tests: on a shared, loaded 2-core machine OpenMP's spinning threads make tiny
trainings take seconds instead of milliseconds."""
import faiss
import pytest


@pytest.fixture(autouse=True, scope="session")
def _single_faiss_thread():
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)
