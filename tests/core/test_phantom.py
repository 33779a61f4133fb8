import numpy as np

from ctstudio.imaging import phantom


def test_phantom_tissues_and_changing_ventricles():
    v = phantom.head_phantom((48, 96, 96))
    a = v.array
    assert a.dtype == np.int16
    assert a[0, 0, 0] == phantom.AIR
    mid = a[24]
    assert mid[48, 48] in (phantom.WHITE, phantom.CSF)
    for t in (phantom.BONE, phantom.GREY, phantom.WHITE, phantom.CSF, phantom.SCALP):
        assert np.any(a == t), t
    csf_per_slice = (a == phantom.CSF).sum(axis=(1, 2))
    assert csf_per_slice.max() > 0 and len(set(csf_per_slice[csf_per_slice > 0].tolist())) > 3


def test_phantom_noise_is_seeded():
    a = phantom.head_phantom_hu((8, 32, 32), noise_sd=10, seed=1)
    b = phantom.head_phantom_hu((8, 32, 32), noise_sd=10, seed=1)
    c = phantom.head_phantom_hu((8, 32, 32), noise_sd=10, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
