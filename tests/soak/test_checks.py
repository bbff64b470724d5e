"""The soak's own checks, on made-up text: a secret is found wherever it hides."""

from benchmarks.soak import find_secrets

PASSWORD = "aB3$kk9!Zq#x2Lm0Pw7^"
TOKEN = "standin-app-secret.Qm9vYmFy_LTE2ODk-xyz"


def test_a_secret_is_found_inside_json_and_log_text():
    secrets = {PASSWORD, TOKEN}
    assert find_secrets(f'{{"value": "{PASSWORD}"}}', secrets) == 1
    assert find_secrets(f"INFO decision body={PASSWORD}{PASSWORD} token {TOKEN}.", secrets) == 3
    assert find_secrets(f"x{TOKEN}y", secrets) == 1


def test_text_without_secrets_finds_none():
    secrets = {PASSWORD, TOKEN}
    assert find_secrets('decision {"status": "created"} ' + PASSWORD[:-1], secrets) == 0
    assert find_secrets("anything", set()) == 0
