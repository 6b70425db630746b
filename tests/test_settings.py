"""Settings: typed, from the environment and .env, and one clear line when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from patone.settings import SettingsError, load_settings


def test_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "DEMO_TENANT", "PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.embedded_postgres and settings.embedded_redis
    assert settings.create_demo_tenant
    assert settings.base_domain == "localhost" and settings.port == 8000


def test_environment_and_dotenv_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("BASE_DOMAIN=Example.COM\nPORT=9000\n")
    monkeypatch.setenv("PORT", "9100")
    settings = load_settings()
    assert settings.base_domain == "example.com"
    assert settings.port == 9100  # the environment wins over .env


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("PORT", "eighty", "Invalid setting PORT"),
        ("PORT", "70000", "Invalid setting PORT"),
        ("DATABASE_URL", "mysql://x", "Invalid setting DATABASE_URL: must start with postgresql"),
        ("REDIS_URL", "http://x", "Invalid setting REDIS_URL"),
        ("LOG_LEVEL", "LOUD", "Invalid setting LOG_LEVEL"),
        ("BASE_DOMAIN", "http://x.com", "Invalid setting BASE_DOMAIN"),
        ("SHARDS", "{not json", "Invalid setting SHARDS"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(words)
    assert "\n" not in str(caught.value)


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = load_settings(secret_key=None, data_dir=tmp_path)
    first = settings.resolved_secret_key()
    assert len(first) > 40
    assert load_settings(secret_key="", data_dir=tmp_path).resolved_secret_key() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_readme_documents_every_setting() -> None:
    from patone.settings import Settings

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in readme]
    assert missing == []
