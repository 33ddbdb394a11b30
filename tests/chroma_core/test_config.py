from __future__ import annotations

import json

import pytest

from chroma_core.config import Config, load_config
from chroma_core.errors import ConfigError
from chroma_core.secret import Secret


def test_defaults_mean_embedded():
    cfg = load_config(environ={})
    assert cfg == Config()
    assert cfg.embedded and cfg.persist_directory == ".chroma"


def test_seed_chroma_json_is_read_from_cwd(tmp_path):
    (tmp_path / "chroma.json").write_text(
        json.dumps(
            {
                "api_key": "secret-456",
                "application_id": "Customer-123",
                "chroma_url": "http://other-location/v2",
                "http_proxy": "",
            }
        )
    )
    cfg = load_config(environ={})
    assert cfg.application_id == "Customer-123"
    assert cfg.chroma_url == "http://other-location/v2"
    assert cfg.api_key == Secret("secret-456")
    assert cfg.http_proxy is None  # "" means unset


def test_precedence_file_string_env_kwargs(tmp_path):
    path = tmp_path / "custom.json"
    path.write_text(json.dumps({"application_id": "file", "persist_directory": "data", "http_proxy": "http://file"}))
    string = json.dumps({"application_id": "string", "http_proxy": "http://string"})
    env = {"CHROMA_HTTP_PROXY": "http://env", "CHROMA_APPLICATION_ID": "env"}
    cfg = load_config(chroma_config=path, chroma_json=string, environ=env, application_id="kwarg")
    assert cfg.application_id == "kwarg"
    assert cfg.http_proxy == "http://env"
    assert cfg.persist_directory == str(tmp_path / "data")  # relative to the file
    cfg = load_config(chroma_config=path, chroma_json=string, environ={})
    assert cfg.http_proxy == "http://string"


def test_chroma_json_replaces_the_implicit_file(tmp_path):
    (tmp_path / "chroma.json").write_text(json.dumps({"application_id": "file"}))
    assert load_config(chroma_json='{"api_key": "k"}', environ={}).application_id is None


def test_env_names_the_file(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"application_id": "x"}))
    assert load_config(environ={"CHROMA_CONFIG": str(tmp_path / "x.json")}).application_id == "x"


def test_chroma_server_url_is_an_alias():
    assert load_config(chroma_server_url="http://127.0.0.1:9/v1/", environ={}).chroma_url == "http://127.0.0.1:9/v1"
    with pytest.raises(ConfigError, match="not both"):
        load_config(chroma_server_url="http://a", chroma_url="http://b", environ={})


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", "not valid JSON"),
        ('{"api_key": "x" # comment\n}', "not valid JSON"),
        ("[1]", "JSON object"),
        ('{"chroma_ur": "http://x"}', "unknown key.*chroma_ur.*known keys"),
        ('{"api_key": 5}', "must be a string"),
        ('{"chroma_url": "localhost:8000"}', "not an http"),
    ],
)
def test_malformed_config_names_the_problem(text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(chroma_json=text, environ={})


def test_named_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(chroma_config=tmp_path / "nope.json", environ={})


def test_malformed_file_error_names_the_file(tmp_path):
    (tmp_path / "chroma.json").write_text("{oops")
    with pytest.raises(ConfigError, match="chroma.json.*line 1"):
        load_config(environ={})


def test_secret_never_shows():
    cfg = load_config(api_key="secret-456", environ={})
    assert "secret-456" not in repr(cfg)
    assert "secret-456" not in str(cfg.api_key)
    assert cfg.api_key is not None and cfg.api_key.get_secret_value() == "secret-456"
    with pytest.raises(ConfigError) as info:
        load_config(chroma_json='{"api_key": "secret-456", "bogus": 1}', environ={})
    assert "secret-456" not in str(info.value)


def test_unknown_kwarg():
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(chroma_urll="x", environ={})
