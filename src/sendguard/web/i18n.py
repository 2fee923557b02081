"""Every string of the console, Japanese first and English second (by Accept-Language).

One dictionary per language with the same keys (a test checks that); templates use
``t.key``. Japanese is the default: an office browser that says nothing gets Japanese.
"""

from __future__ import annotations

from typing import Final

from sendguard.notify.settings import Language

STRINGS: Final[dict[Language, dict[str, str]]] = {
    "ja": {
        "app": "送信ガード 確認画面",
        "skip": "本文へ移動",
        "sign_in": "サインイン",
        "sign_out": "サインアウト",
        "login": "ログイン名",
        "password": "パスワード",
        "bad_login": "ログイン名またはパスワードが違います。",
        "locked": "サインインの失敗が続いたため、しばらくサインインできません。"
        "時間をおいてから試してください。",
        "not_reviewer": "このアカウントは承認者または管理者として登録されていません"
        "(ポリシーの [people] で role を reviewer か admin にしてください)。",
        "signed_in_as": "サインイン中",
        "queue": "保留・待機中のメール",
        "dashboard": "判断の統計",
        "filter": "絞り込み",
        "state": "状態",
        "rule": "ルール",
        "sender": "差出人",
        "older_than": "経過時間(時間以上)",
        "any": "すべて",
        "apply": "絞り込む",
        "id": "キューID",
        "age": "経過",
        "approvals": "承認",
        "none_waiting": "該当するメールはありません。",
        "held": "保留中",
        "delayed": "送信待機中",
        "released": "送信許可済み",
        "delivering": "配送中",
        "delivered": "配送済み",
        "rejected": "却下",
        "cancelled": "取り消し",
        "expired": "期限切れ",
        "failed": "配送失敗",
        "envelope": "エンベロープ",
        "mail_from": "エンベロープ差出人",
        "auth_user": "認証ユーザー",
        "recipients": "宛先",
        "headers": "ヘッダー",
        "findings": "見つかった内容(一部を伏せ字にしています)",
        "attachments": "添付ファイル",
        "file": "ファイル名",
        "type": "種類",
        "size": "サイズ",
        "found_in_file": "このファイルで見つかった内容",
        "nothing_found": "なし",
        "body": "本文(テキストとして表示。HTML は実行しません)",
        "no_text_body": "テキストの本文はありません。",
        "reviewers": "承認者",
        "expires_at": "期限",
        "release_at": "送信予定",
        "release": "送信を許可する",
        "reject": "却下する",
        "reason": "却下の理由(差出人に伝えます)",
        "delete": "削除する(誰にも通知しません・管理者のみ)",
        "done_released": "送信を許可しました。",
        "done_approved": "承認を記録しました。あと {missing} 人の承認が必要です。",
        "done_rejected": "却下しました。差出人に理由を通知します。",
        "done_deleted": "削除しました。",
        "done_cancelled": "送信を取り消しました。このメールは送信されません。",
        "done_review_requested": "承認者に確認を依頼しました。",
        "refused": "この操作はできません",
        "not_found": "そのメールは見つかりません(すでに処理されたか削除されました)。",
        "back": "一覧へ戻る",
        "link_title": "メールの操作の確認",
        "link_confirm": "次の操作を行います。よろしければボタンを押してください。",
        "link_invalid": "このリンクは正しくありません"
        "(改変されたか、送信ガードが発行したものではありません)。何も変更していません。",
        "link_expired": "このリンクは有効期限が切れています。何も変更していません。",
        "link_used": "このリンクはすでに使われています。何も変更していません。",
        "link_state": "このメールは現在「{state}」のため、この操作はできません。"
        "何も変更していません。",
        "action_cancel": "送信を取り消す",
        "action_send_now": "今すぐ送信する",
        "action_confirm": "内容を確認したので自分で送信する",
        "action_request_review": "承認者に確認を依頼する",
        "subject": "件名",
        "csrf": "フォームの有効期限が切れたか、別の画面から送信されました。"
        "画面を開き直してください。何も変更していません。",
        "decisions": "判断",
        "release_rate": "送信許可の割合",
        "median_minutes": "判断までの時間(中央値・分)",
        "viewed_before_release": "詳細を開いてから許可した割合",
        "no_decisions": "まだ判断の記録がありません。",
        "forbidden": "このメールを判断する権限がありません。",
    },
    "en": {
        "app": "sendguard review console",
        "skip": "Skip to content",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "login": "Login",
        "password": "Password",
        "bad_login": "Wrong login or password.",
        "locked": "Too many failed sign-ins: signing in is blocked for a while. Try again later.",
        "not_reviewer": "This account is not listed as a reviewer or an admin "
        "(set its role to reviewer or admin in the policy's [people]).",
        "signed_in_as": "Signed in as",
        "queue": "Held and delayed mail",
        "dashboard": "Decision statistics",
        "filter": "Filter",
        "state": "State",
        "rule": "Rule",
        "sender": "Sender",
        "older_than": "Older than (hours)",
        "any": "Any",
        "apply": "Filter",
        "id": "Queue id",
        "age": "Age",
        "approvals": "Approvals",
        "none_waiting": "No matching mail.",
        "held": "held",
        "delayed": "delayed",
        "released": "released",
        "delivering": "delivering",
        "delivered": "delivered",
        "rejected": "rejected",
        "cancelled": "cancelled",
        "expired": "expired",
        "failed": "failed",
        "envelope": "Envelope",
        "mail_from": "Envelope sender",
        "auth_user": "Authenticated user",
        "recipients": "Recipients",
        "headers": "Headers",
        "findings": "What was found (masked)",
        "attachments": "Attachments",
        "file": "File name",
        "type": "Type",
        "size": "Size",
        "found_in_file": "Found in this file",
        "nothing_found": "nothing",
        "body": "Body (shown as text; HTML is never run)",
        "no_text_body": "There is no text body.",
        "reviewers": "Reviewers",
        "expires_at": "Expires",
        "release_at": "Goes out at",
        "release": "Release",
        "reject": "Reject",
        "reason": "Reason for rejecting (sent to the sender)",
        "delete": "Delete (notifies nobody; admins only)",
        "done_released": "Released.",
        "done_approved": "Your approval is recorded; {missing} more approval(s) needed.",
        "done_rejected": "Rejected; the sender is told the reason.",
        "done_deleted": "Deleted.",
        "done_cancelled": "Cancelled: this message will not be sent.",
        "done_review_requested": "The reviewers have been asked to decide.",
        "refused": "This action is not allowed",
        "not_found": "That message is not in the queue (decided or deleted already).",
        "back": "Back to the list",
        "link_title": "Confirm the action",
        "link_confirm": "The following will be done. Press the button to go ahead.",
        "link_invalid": "This link is not valid (it was altered or not issued by sendguard). "
        "Nothing was changed.",
        "link_expired": "This link has expired. Nothing was changed.",
        "link_used": "This link has been used already. Nothing was changed.",
        "link_state": "This message is {state} now, so this cannot be done. Nothing was changed.",
        "action_cancel": "Cancel sending",
        "action_send_now": "Send it now",
        "action_confirm": "I have checked it: send it",
        "action_request_review": "Ask the reviewers to decide",
        "subject": "Subject",
        "csrf": "The form expired or was sent from another page. Open the page again. "
        "Nothing was changed.",
        "decisions": "Decisions",
        "release_rate": "Release rate",
        "median_minutes": "Time to decision (median, minutes)",
        "viewed_before_release": "Released after opening the details",
        "no_decisions": "No decisions recorded yet.",
        "forbidden": "You may not decide on this message.",
    },
}


def pick_language(accept_language: str) -> Language:
    """The first of ja/en in the browser's preference order (by q); Japanese by default."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, index, tag.strip().casefold()))
    for _q, _i, tag in sorted(ranked):
        if tag.startswith("ja"):
            return "ja"
        if tag.startswith("en"):
            return "en"
    return "ja"
