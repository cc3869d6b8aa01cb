-- Student t 0.975 quantiles by degrees of freedom, for the t-interval of a mean over subjects that
-- `leaderboard` and `hierarchy` report. df 1–30 are scipy.stats.t.ppf(0.975, df) to 4 decimals; beyond 30 a
-- Cornish-Fisher expansion in 1/df (< 1e-5 off; tests/test_adversarial.py checks it against scipy).
SELECT r.range::INTEGER AS df,
       coalesce(t.q, 1.959964 + 2.372272 / r.range + 2.822499 / r.range ^ 2 + 2.555850 / r.range ^ 3) AS q975
FROM range(1, 100001) r
LEFT JOIN (VALUES (1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (5, 2.5706), (6, 2.4469), (7, 2.3646),
    (8, 2.3060), (9, 2.2622), (10, 2.2281), (11, 2.2010), (12, 2.1788), (13, 2.1604), (14, 2.1448), (15, 2.1314),
    (16, 2.1199), (17, 2.1098), (18, 2.1009), (19, 2.0930), (20, 2.0860), (21, 2.0796), (22, 2.0739), (23, 2.0687),
    (24, 2.0639), (25, 2.0595), (26, 2.0555), (27, 2.0518), (28, 2.0484), (29, 2.0452), (30, 2.0423)) AS t(df, q)
  ON t.df = r.range
